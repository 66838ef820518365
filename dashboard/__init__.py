"""The coach dashboard (Streamlit); reads Redis only."""
