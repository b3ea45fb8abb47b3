"""Offline libraries in the portal: the catalogue, articles and search for readers, hiding and groups for staff."""
