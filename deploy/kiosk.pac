// Proxy auto-config for kiosk browsers at terminals.
// Edit the two names below: the portal is reached directly (it identifies the terminal by its address),
// everything else goes through the Gatehouse gateway.
function FindProxyForURL(url, host) {
  if (host === "portal.prison.example") {
    return "DIRECT";
  }
  return "PROXY gateway.prison.example:3128";
}
