"""gtx_ray: Ray-distributed smart meter simulator."""
