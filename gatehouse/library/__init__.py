"""Offline libraries: Kiwix ZIM files served read-only by the portal, with articles hidden and libraries kept to
groups by education staff."""
