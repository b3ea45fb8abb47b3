"""Curation: inmates ask for sites, education staff propose rules, a second pair of eyes approves them."""
