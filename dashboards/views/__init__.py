"""One module per dashboard page; each runs as a Streamlit page script (st.navigation in app.py)."""
