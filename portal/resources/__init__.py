"""The directory of services for release in the portal: search and entries for inmates, editing, checking and
opening websites for staff; job offers; the inmate's release plan and its PDF, and the staff who support it."""
