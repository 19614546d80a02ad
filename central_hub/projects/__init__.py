"""Projects at the hub: members, access requests decided at each site, and who may see what."""
