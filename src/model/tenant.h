/* Tenants and users (DESIGN.md section 4, docs/tenancy.md). A tenant's `sites` expression
 * (an application tenant's site assignment) is compiled once and kept here. Ownership as
 * in model/app.h. */
#ifndef SK_MODEL_TENANT_H
#define SK_MODEL_TENANT_H

#include <jansson.h>

#include "common/error.h"
#include "model/field.h"
#include "model/resource.h"

typedef enum sk_tenant_type { SK_TENANT_PROVIDER, SK_TENANT_APPLICATION } sk_tenant_type;

typedef enum sk_role { SK_ROLE_ADMIN, SK_ROLE_OPERATOR, SK_ROLE_DEVELOPER, SK_ROLE_VIEWER } sk_role;

/* What an application tenant may use on each site; an unset limit is no limit. */
typedef struct sk_tenant_quota {
        sk_quantity cpu;
        sk_quantity memory;
        int64_t instances; /* 0..100000 or SK_UNSET */
} sk_tenant_quota;

typedef struct sk_tenant {
        char *name;
        int type;           /* sk_tenant_type, default application */
        char *parent;       /* the provider it was made in (the tower sets it), or NULL */
        sk_expr_text sites; /* the provider's sites it is assigned, or unset */
        sk_tenant_quota *quota_per_site;
} sk_tenant;

typedef struct sk_user {
        char *name;
        char *tenant; /* or NULL: the tenant of the request */
        int role;     /* sk_role, default viewer */
} sk_user;

extern const sk_model sk_tenant_table;
SK_RESOURCE_DECLARE(tenant, sk_tenant)

extern const sk_model sk_user_table;
SK_RESOURCE_DECLARE(user, sk_user)

#define _cleanup_tenant_ __attribute__((cleanup(sk_tenant_freep)))

#define _cleanup_user_ __attribute__((cleanup(sk_user_freep)))
#endif
