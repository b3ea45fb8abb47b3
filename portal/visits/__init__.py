"""Video visits in the portal: booking pages, the call's page and its signalling socket."""
