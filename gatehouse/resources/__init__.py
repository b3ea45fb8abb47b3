"""The directory of services for release: HSDS entries, jobs and release plans."""
