"""Access requests decided at the site: the decisions (site database), the hub exchange, enforcement."""
