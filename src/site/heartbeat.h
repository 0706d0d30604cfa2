/* A host's heartbeat (docs/site-cluster.md, "Heartbeats"): what a host of the site LAN
 * sends the leader every second, parsed and checked before the leader keeps it. Pure: no
 * I/O, no clock, no locks; tests/fuzz/fuzz_heartbeat.c feeds it what the LAN can send.
 *
 * A report: {"host-id": ID (optional; when present, the sender's certificate's),
 *            "host": NAME, "address": "ADDR:PORT", "labels": {KEY: "VALUE"},
 *            "devices": {LABEL: [{"path", "host-path"}]} (optional),
 *            "capacity": {"cpu": MILLICORES, "memory": BYTES},
 *            "instances": [INSTANCE, ...] (optional; the tower checks each),
 *            "certificate": PEM (optional: a host the site CA signed sends its chain, which
 *                           the leader forwards for the tower to adopt it on)} */
#ifndef SK_SITE_HEARTBEAT_H
#define SK_SITE_HEARTBEAT_H

#include <jansson.h>
#include <stdbool.h>
#include <stdint.h>

#include "common/error.h"

#define SK_HEARTBEAT_LABELS_MAX    256
#define SK_HEARTBEAT_INSTANCES_MAX 4096
#define SK_HEARTBEAT_CERT_MAX      16384

/* Checks a report from the host whose certificate names peer; *report is a new object
 * with only the fields above (devices and instances defaulted to empty). -EINVAL with
 * the field's path otherwise. */
int sk_heartbeat_parse(const json_t *body, int64_t peer, json_t **report, sk_error **err);

/* The host inventory entry (cluster_fsm.h HOST) a parsed report asks for. */
json_t *sk_heartbeat_host_entry(const json_t *report, int64_t id, bool alive);

#endif
