"""Curation in the portal: inmates ask for sites (inmate.py), education and security staff review, propose and
approve (staff.py); the rules live in `gatehouse.curation`."""
