/* The pure parts of `skerry apply`: dependency order of documents and turning a JSON path
 * in an error back into FILE:LINE:COLUMN. */
#ifndef SK_CLI_APPLY_H
#define SK_CLI_APPLY_H

#include <jansson.h>
#include <stddef.h>

#include "common/yaml.h"
#include "model/spec.h"

typedef struct sk_cli_doc {
        const char *file;       /* as shown in messages ("<stdin>" for -) */
        const sk_yaml_doc *doc; /* the document as read */
        sk_kind kind;
        size_t index; /* input order across all files */
} sk_cli_doc;

/* Lower goes first: tenant, user, site, vault, secret, application, deployment, others. */
int sk_cli_kind_rank(sk_kind kind);

/* Stable sort by rank: documents of one kind keep their input order. */
void sk_cli_order_docs(sk_cli_doc *docs, size_t n);

/* "FILE:LINE:COLUMN: PATH: MESSAGE" with the position of path in doc (or of its nearest
 * ancestor; the document's first line when nothing matches); "FILE:LINE:COLUMN: MESSAGE"
 * when path is NULL or empty. Caller frees. */
char *sk_cli_doc_error(const char *file, const sk_yaml_doc *doc, const char *path, const char *msg);

/* "application/pos 2.1.0 created", "site/store-001 unchanged". Caller frees. */
char *sk_cli_apply_line(sk_kind kind, const json_t *doc, const char *result);

#endif
