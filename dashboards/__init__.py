"""Streamlit SRE dashboards for fleetpilot; data comes only through the control-plane HTTP API."""
