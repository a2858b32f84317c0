"""The control tower's HTTP edge: the page, its static assets and the JSON API."""
