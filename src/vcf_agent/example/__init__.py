"""The bundled example call set, made by a coalescent simulation."""
