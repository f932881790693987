"""The plugin template behind `convparity new-backend` (render.py renders it; copier.yml and project/ are the
Copier template, shipped as package data)."""
