/* Where the Kubernetes API is and how to authenticate to it (SEMANTICS.md rule 38).
 *
 * In-cluster: https://$KUBERNETES_SERVICE_HOST:$KUBERNETES_SERVICE_PORT (an IPv6 address in
 * brackets, no DNS needed), the service account token and ca.crt beside it. --kube-api,
 * --kube-token-file and --kube-ca-file override each part; without --kube-ca-file the CA is
 * ca.crt in the token file's directory.
 *
 * Pure apart from reading the token file, which is small and local (a tmpfs the kubelet
 * projects): it is opened by path every time, since the kubelet swaps a symlink to rotate it.
 */
#ifndef MESHDNS_KCONF_H
#define MESHDNS_KCONF_H

#include <stddef.h>

#define KCONF_SA_DIR	 "/var/run/secrets/kubernetes.io/serviceaccount"
#define KCONF_TOKEN_PATH KCONF_SA_DIR "/token"
#define KCONF_MAX_URL	 512
#define KCONF_MAX_TOKEN	 (16u << 10)

/* Writes the API server's base URL (no trailing slash) into @out: @flag_url when given,
 * else from @host and @port (the environment variables' values, NULL when unset). Returns
 * 0; -ENOENT when neither is usable (not in a cluster); -EINVAL for a bad value; -E2BIG. */
int kconf_api_url(const char *flag_url, const char *host, const char *port, char *out, size_t cap);

/* Writes the CA path into @out: @flag_ca when given, else ca.crt beside @token_path.
 * Returns 0 or -E2BIG. */
int kconf_ca_path(const char *flag_ca, const char *token_path, char *out, size_t cap);

/* Reads the token at @path into @out (NUL-terminated), trimmed of surrounding whitespace.
 * Returns its length; -errno from open/read; -E2BIG when it is larger than @cap - 1;
 * -ENODATA when it is empty. The contents are never logged. */
int kconf_read_token(const char *path, char *out, size_t cap);

/* Percent-encodes @in for a query value into @out (every byte but unreserved ones). Returns
 * the length or -E2BIG. */
int kconf_escape(const char *in, char *out, size_t cap);

#endif
