"""Task modules outside relieve_app, as a project's own apps would hold them."""
