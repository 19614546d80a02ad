"""The hub catalog: sites, their published collections and facet cells, and faceted search."""
