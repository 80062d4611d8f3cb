/**
 * The proxy variables a bottle gets, in both cases (curl reads only the
 * lower-case http_proxy; many tools read only the upper case). Loopback stays
 * direct.
 */
export function proxyEnvironment(proxyUrl: string): Record<string, string> {
  const noProxy = "localhost,127.0.0.1,::1";
  return {
    HTTP_PROXY: proxyUrl,
    HTTPS_PROXY: proxyUrl,
    http_proxy: proxyUrl,
    https_proxy: proxyUrl,
    NO_PROXY: noProxy,
    no_proxy: noProxy,
  };
}
