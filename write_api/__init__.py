"""The write API: auth routes and command routes. Imports commands and domain only."""
