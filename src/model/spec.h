/* Resource kinds and their validation (DESIGN.md section 4).
 *
 * A validator takes one JSON document as the user wrote it (after YAML loading) and
 * either returns a normalised copy (defaults filled in, kind canonical) or an error whose
 * `path` names the field at fault ("services[0].replicas") and whose message says what is
 * wrong ("must be an integer from 0 to 1000"). Unknown fields are errors. The same code
 * runs in the CLI (so errors carry file, line and column) and in the tower (authoritative). */
#ifndef SK_MODEL_SPEC_H
#define SK_MODEL_SPEC_H

#include <jansson.h>
#include <stdbool.h>
#include <stdint.h>

#include "common/error.h"

typedef enum sk_kind {
        SK_KIND_TENANT,
        SK_KIND_USER,
        SK_KIND_SITE,
        SK_KIND_HOST,
        SK_KIND_APPLICATION,
        SK_KIND_DEPLOYMENT,
        SK_KIND_VAULT,
        SK_KIND_SECRET,
        SK_KIND_INSTANCE,
        SK_KIND_ALERT,
        SK_KIND_COUNT
} sk_kind;

typedef struct sk_kind_info {
        sk_kind kind;
        const char *name;   /* "application": the `kind:` value and the canonical singular */
        const char *plural; /* "applications": the API path segment */
        const char *alias;  /* "app", or NULL */
        bool appliable;     /* can be created with `skerry apply` */
} sk_kind_info;

/* Looks up a kind by singular, plural or alias ("app", "apps", "applications"). */
const sk_kind_info *sk_kind_lookup(const char *word);
const sk_kind_info *sk_kind_get(sk_kind kind);

/* Validates any appliable document by its `kind:` field. */
int sk_spec_validate(const json_t *doc, json_t **normalized, sk_error **err);
/* The same for a document that must be of the given kind (the tower's PUT /v1/KINDS/NAME):
 * a `kind:` naming another kind is an error with path "kind". For a label expression
 * that does not parse, (*err)->column is the column inside the expression (line 0). */
int sk_spec_validate_kind(sk_kind kind, const json_t *doc, json_t **normalized, sk_error **err);

/* The two halves of sk_spec_validate_kind, for a caller that keeps the typed document
 * (the tower's PUT): the field table of an appliable kind (NULL for the others), and the
 * document as it is parsed, a copy checked to be of that kind and without what the tower
 * adds to a resource it answers with (created, updated, versions, status, and tenant but
 * in a user). */
struct sk_model;
const struct sk_model *sk_spec_model(sk_kind kind);
int sk_spec_input(sk_kind kind, const json_t *doc, json_t **input, sk_error **err);

/* A label key: NAME or PREFIX/NAME, NAME 1..63 of [A-Za-z0-9._-] starting and ending
 * alphanumeric, PREFIX a lowercase DNS name (dot-separated DNS labels, at most 253).
 * Reserved prefixes (system/) are not refused here: sk_spec_validate does that. */
bool sk_spec_valid_label_key(const char *key);

/* A DNS label: [a-z0-9-], 1..63, not starting or ending with '-'. */
bool sk_spec_valid_name(const char *name);

/* Quantities. cpu: 0.5, "500m", 2 -> millicores. memory: 256Mi, 1Gi, 1G, 1000 -> bytes.
 * duration: "5s", "10m", "1h30m", "250ms" -> milliseconds. Return 0 or -EINVAL. */
int sk_quantity_cpu(const json_t *v, int64_t *millicores);
int sk_quantity_memory(const json_t *v, int64_t *bytes);
int sk_duration_ms(const char *text, int64_t *ms);

/* Compares version strings "2.1.0" vs "2.10.0" numerically by dot-separated parts
 * (non-numeric parts compare as strings). <0, 0, >0 like strcmp. */
int sk_version_compare(const char *a, const char *b);

#endif
