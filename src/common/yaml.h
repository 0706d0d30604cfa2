/* YAML (and JSON, which is YAML) documents into jansson values, keeping where every node
 * came from so that a validator's JSON path can be turned back into "file:line:column".
 *
 * Scalars are typed as YAML 1.2's core schema says: plain `null`/`~`/empty -> null,
 * `true`/`false` -> boolean, integers (decimal, 0x, 0o) -> integer, decimals -> real;
 * everything else, and every quoted scalar, is a string. Anchors/aliases are refused
 * (they make "where did this come from" ambiguous and invite billion-laughs); duplicate
 * keys are refused.
 *
 * Paths: a mapping member is `parent.key` (just `key` at the root), a sequence item
 * `parent[3]`. A key that is not made only of [A-Za-z0-9_-] is written quoted in
 * brackets, JSON-style, with '"' and '\\' escaped by a backslash: `labels["system/name"]`,
 * `labels["a.b"]`, `env[""]`. Use sk_yaml_path_key/_index to build them, so that
 * validators and this map agree.
 *
 * Other choices: a plain `.inf`/`.nan` stays a string (JSON has no such numbers); an
 * integer outside int64 is an error; `!!str` forces a string, other standard tags
 * (`!!int`, `!!map`, ...) are allowed and ignored, unknown tags are refused; a scalar
 * holding a NUL character is refused; positions point at the node's value. */
#ifndef SK_COMMON_YAML_H
#define SK_COMMON_YAML_H

#include <jansson.h>
#include <stddef.h>

#include "common/error.h"

typedef struct sk_yaml_doc {
        json_t *value;           /* owned */
        int line;                /* 1-based line where the document starts */
        struct sk_yaml_pos *pos; /* owned: positions by JSON path */
        size_t npos;
} sk_yaml_doc;

typedef struct sk_yaml_pos {
        char *path; /* "" for the root, "services[0].replicas", "labels.chain" */
        int line, column;
} sk_yaml_pos;

typedef struct sk_yaml_docs {
        sk_yaml_doc *docs;
        size_t n;
} sk_yaml_docs;

/* Parses every document in text (empty documents are skipped). On a syntax error,
 * (*err)->line and ->column say where. Nesting deeper than 64 levels is refused. */
int sk_yaml_load(const char *text, size_t len, sk_yaml_docs *out, sk_error **err);
void sk_yaml_docs_free(sk_yaml_docs *docs);

/* Line and column of the node at path, or of its nearest ancestor that has one.
 * Returns 0 when found, -ENOENT otherwise. */
int sk_yaml_doc_position(const sk_yaml_doc *doc, const char *path, int *line, int *column);

/* The path of member key (or item index) under the path parent; caller frees. */
char *sk_yaml_path_key(const char *parent, const char *key);
char *sk_yaml_path_index(const char *parent, size_t index);

/* Writes value as block-style YAML (for `-o yaml`); caller frees. */
char *sk_yaml_dump(const json_t *value);

#define _cleanup_yaml_docs_ __attribute__((cleanup(sk_yaml_docs_free)))

#endif
