"""Plotly Dash dashboard: live spam beside raw chat, history search, overview (`python -m dashboard`)."""
