"""The gateway's HTTP edge for the hall's screens: routes, pages and their assets."""
