/* The rules for names and strings that more than one resource uses, each written once
 * (docs/resources.md). The resource modules name them in their field tables. */
#ifndef SK_MODEL_RULES_H
#define SK_MODEL_RULES_H

#include <stdbool.h>

#include "model/field.h"

extern const sk_string_rule sk_rule_name;         /* a DNS label (sk_spec_valid_name) */
extern const sk_string_rule sk_rule_version;      /* "2.1.0" */
extern const sk_string_rule sk_rule_device_label; /* "camera" */
extern const sk_string_rule sk_rule_secret_key;   /* "tls.crt" */
extern const sk_string_rule sk_rule_env_name;     /* "LOG_LEVEL" */
extern const sk_string_rule sk_rule_any_string;   /* any string, "" too */

/* A variable (or udev property) name: A-Z, a-z, 0-9 and '_', not starting with a digit. */
bool sk_rule_env_name_ok(const char *s);
/* 1..max of alphanumerics and the characters in extra. */
bool sk_rule_charset(const char *s, size_t max, const char *extra);

/* A list of 0..64 device labels, each listed once (a service's placement.devices and a
 * container's devices). */
extern const sk_list_rule sk_rule_device_labels;

/* A host's id (positive; docs/site-cluster.md), and a list of them ("removed-hosts"). */
extern const sk_int_rule sk_rule_host_id;
extern const sk_list_rule sk_rule_host_ids;

/* Host or site labels: a mapping of at most 64 label keys (not under system/) to strings,
 * as a jansson object of strings: the form sk_expr_match() takes. */
extern const sk_field_type sk_ft_labels;

#endif
