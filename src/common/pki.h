/* The certificate authority and the X.509 work around it, on GnuTLS.
 *
 * The tower keeps one CA (ECDSA P-256 key, self-signed, 10 years) under its data folder.
 * It issues the tower's own server certificate and, at join time, signs each host's CSR
 * into a client certificate whose identity is a URI subject alternative name
 * "skerry://site/<site-id>/host/<host-id>" (numeric ids from the tower's store); the
 * subject CN is the host name, for people. A peer is authenticated by chaining its
 * certificate to the CA and reading that URI back.
 *
 * So that a host can join while the tower is unreachable, the tower also issues each site
 * a site CA (URI "skerry://site/<site-id>", path length 0) that signs identities of that
 * site only. Such a host sends its certificate followed by the site CA's; verifiers accept
 * the chain leaf -> site CA -> tower CA when both name the same site. */
#ifndef SK_COMMON_PKI_H
#define SK_COMMON_PKI_H

#include <gnutls/gnutls.h>
#include <stdbool.h>
#include <stdint.h>

#include "common/error.h"

typedef struct sk_ca sk_ca;

/* Loads DIR/ca.pem and DIR/ca.key (mode 0600), creating both on first use. */
int sk_ca_open(const char *dir, sk_ca **out, sk_error **err);
void sk_ca_free(sk_ca *ca);
const char *sk_ca_cert_pem(const sk_ca *ca);

/* A fresh ECDSA P-256 key and a server certificate for the given DNS names and IP
 * addresses (each entry is either), valid for `days`. Both PEM; caller frees. */
int sk_ca_issue_server(sk_ca *ca, const char *const *names, size_t n_names, unsigned days,
                       char **cert_pem, char **key_pem, sk_error **err);

/* Signs a PEM CSR into a client certificate carrying uri as its URI SAN and cn as its
 * subject CN (the CSR's own subject and extensions are ignored), valid for `days`. */
int sk_ca_sign_client(sk_ca *ca, const char *csr_pem, const char *cn, const char *uri,
                      unsigned days, char **cert_pem, sk_error **err);

/* A fresh ECDSA P-256 key and a site CA certificate for site_id signed by the tower CA
 * (CA, path length 0, keyCertSign, URI "skerry://site/<site_id>", expiring with the tower
 * CA). Both PEM; caller frees. -EINVAL when ca is itself a site CA. */
int sk_ca_issue_site_ca(sk_ca *ca, int64_t site_id, char **cert_pem, char **key_pem,
                        sk_error **err);

/* Loads a site CA from its PEM certificate and key. sk_ca_sign_client with it signs only
 * "skerry://site/<its site>/host/..." identities; the certificate it returns is the leaf
 * alone, and peers send it followed by sk_ca_cert_pem of the site CA. */
int sk_ca_load_site(const char *cert_pem, const char *key_pem, sk_ca **out, sk_error **err);

/* A 32-byte secret derived from the CA's private key and label (HMAC-SHA256): the same for
 * every holder of the CA, unknown to anyone else. Seals what the tower keeps in its store. */
#define SK_CA_SECRET_BYTES 32
int sk_ca_derive_secret(sk_ca *ca, const char *label, unsigned char out[SK_CA_SECRET_BYTES],
                        sk_error **err);

/* The site a site CA signs for; 0 for the tower's CA. */
int64_t sk_ca_site_id(const sk_ca *ca);

/* A fresh ECDSA P-256 key and a CSR with subject CN=cn. Both PEM; caller frees. */
int sk_pki_make_key_and_csr(const char *cn, char **key_pem, char **csr_pem, sk_error **err);

/* Verifies the peer certificate of an established TLS session against trust (the CA
 * certificate PEM) and returns its URI SAN. The peer sends either a leaf signed by the CA,
 * or a leaf and the site CA that signed it, which must be signed by the CA and name the
 * leaf's site. -EACCES with a clear message when there is no certificate, it does not
 * chain to the CA, it has expired, it carries no URI, or a site CA speaks for another
 * site or for an id outside its site's own range. It cannot tell a retired site CA
 * generation from the current one: verifiers of hosts use sk_pki_verify_peer_ca. */
int sk_pki_verify_peer(gnutls_session_t session, const char *ca_pem, char **uri, sk_error **err);

/* The GnuTLS priority string of every TLS endpoint of the project (the tower's server, the
 * CLI's, agents' and site API's clients; docs/security.md): TLS 1.3 and 1.2 only, AEAD
 * ciphers, forward-secret ECDHE key exchange. */
#define SK_TLS_PRIORITY                                                                            \
        "NORMAL:-VERS-ALL:+VERS-TLS1.3:+VERS-TLS1.2:-CIPHER-ALL:+AES-256-GCM:+AES-128-GCM:"        \
        "+CHACHA20-POLY1305:-MAC-ALL:+AEAD:-KX-ALL:+ECDHE-ECDSA:+ECDHE-RSA"

/* SHA-256 of a certificate's DER, 64 hex digits and a NUL. */
#define SK_PKI_FP_LEN 65
int sk_pki_fingerprint(const char *pem, char hex[SK_PKI_FP_LEN], sk_error **err);

/* SHA-256 of len bytes as 64 lowercase hex digits (tokens and secrets are stored and
 * replicated only as this); -EIO when hashing fails. */
int sk_sha256_hex(const void *data, size_t len, char hex[SK_PKI_FP_LEN]);

/* The SHA-256 of the peer's own certificate (the leaf) in an established session. */
int sk_pki_peer_leaf_fp(gnutls_session_t session, char fp[SK_PKI_FP_LEN]);

/* What a verified chain went through: its site CA ("" for none) and its leaf. */
typedef struct sk_pki_chain {
        char site_ca[SK_PKI_FP_LEN];
        char leaf[SK_PKI_FP_LEN];
} sk_pki_chain;

/* sk_pki_verify_peer, also giving the fingerprint of the site CA that signed the leaf in
 * site_ca_fp ("" when the tower CA signed it). Any generation of a site CA verifies here:
 * the caller refuses a retired one with sk_pki_check_site_ca (docs/security.md). */
int sk_pki_verify_peer_ca(gnutls_session_t session, const char *ca_pem, char **uri,
                          char site_ca_fp[SK_PKI_FP_LEN], sk_error **err);

/* The same check on PEM text: a host certificate, or it followed by its site CA (what a
 * leader forwards for a host that joined the site while the tower was unreachable). */
int sk_pki_verify_pem(const char *chain_pem, const char *ca_pem, char **uri,
                      char site_ca_fp[SK_PKI_FP_LEN], sk_error **err);

/* 0 when got_fp (a chain's site CA, "" for none) is current_fp, the site's current site CA,
 * or either is empty (no site CA in the chain, or none known yet); -EACCES otherwise. */
int sk_pki_check_site_ca(const char *got_fp, const char *current_fp, sk_error **err);

/* The CA trust list built once (the tower verifies thousands of peers with one): read-only
 * after sk_pki_trust_new, so threads may verify with it at the same time. */
typedef struct sk_pki_trust sk_pki_trust;
int sk_pki_trust_new(const char *ca_pem, sk_pki_trust **out, sk_error **err);
void sk_pki_trust_free(sk_pki_trust *t);
/* sk_pki_verify_peer_ca against a prebuilt trust list. */
int sk_pki_verify_peer_trust(gnutls_session_t session, const sk_pki_trust *trust, char **uri,
                             char site_ca_fp[SK_PKI_FP_LEN], sk_error **err);

/* Parses "skerry://site/<site>/host/<host>" into its ids; -EINVAL otherwise. */
int sk_pki_parse_host_uri(const char *uri, int64_t *site_id, int64_t *host_id);

/* Host ids a site gives the hosts that join it while the tower is unreachable:
 * 2^62 + site_id * 2^24 + n, 0 < n < 2^24 (far above the tower's own sequence). */
#define SK_PKI_LOCAL_ID_BASE (1LL << 62)
bool sk_pki_is_site_local_id(int64_t site_id, int64_t host_id);

/* Parses a site CA's "skerry://site/<site>" into its id; -EINVAL otherwise. */
int sk_pki_parse_site_uri(const char *uri, int64_t *site_id);

/* Reads and writes small files whole; writes go through a temporary file and rename,
 * with the given mode. */
int sk_file_read(const char *path, char **data, size_t *len, sk_error **err);
int sk_file_write(const char *path, const char *data, size_t len, unsigned mode, sk_error **err);

void sk_ca_freep(sk_ca **ca);
#define _cleanup_ca_ __attribute__((cleanup(sk_ca_freep)))

#endif
