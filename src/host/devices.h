/* Device discovery (DESIGN.md section 4, docs/scheduler.md): which device nodes of this host
 * carry each device label of the site, and the host labels that publish them.
 *
 * Rules are the site's `devices:` list, [{"label": "camera", "match": "/dev/video*"}, ...]:
 * a glob(7) pattern relative to the real /dev, looked up under a dev-dir root (the agent's
 * --dev-dir, "/dev" in production, a test folder in tests). Only character and block
 * devices count (a symlink counts when it leads to one); plain files, folders and sockets
 * do not. Rules with `udev:` properties instead of `match:` are not handled here and find
 * nothing.
 *
 * A discovery is JSON, so it can be logged, reported and compared:
 *   {"camera": [{"path": "/dev/video0", "host-path": "DEVDIR/video0", "type": "char",
 *                "major": 81, "minor": 0}, ...],
 *    "gpu": []}
 * Every rule's label is a key, even with no nodes; nodes are sorted by path in version
 * order (video2 before video10), each path once. `path` is where the node lives in /dev
 * (and in a container), `host-path` where it was found. */
#ifndef SK_HOST_DEVICES_H
#define SK_HOST_DEVICES_H

#include <jansson.h>

#include "common/error.h"

/* rules: a JSON array (NULL: none). dev_dir: the root that stands for /dev. Errors name the
 * rule's field ("devices[1].match") or the dev-dir. */
int sk_devices_discover(const json_t *rules, const char *dev_dir, json_t **out, sk_error **err);

/* {"device/camera": "2", ...}: one label per device label with at least one node, its value
 * the number of nodes. NULL only when out of memory. */
json_t *sk_devices_host_labels(const json_t *discovery);

/* Compares two discoveries (NULL is an empty one). Returns 0 when they are the same, 1
 * when devices came or went (or changed numbers), -ENOMEM. With summary non-NULL and a
 * change, *summary says what changed (caller frees):
 *   "camera: added /dev/video1, removed /dev/video0; gpu: changed /dev/nvidia0" */
int sk_devices_diff(const json_t *before, const json_t *after, char **summary);

#endif
