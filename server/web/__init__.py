"""Server-rendered web pages for the people in the workshop: the live machine board (kiosk),
the manager's, the technician's and the artisan's pages. Jinja2 templates with their CSS and a
little plain JavaScript shipped in this package (no CDN, no build step); French first."""
