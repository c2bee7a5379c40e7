"""``canaryflow doctor``: is this cluster ready for a first release? ``checks`` decides from what
``probe`` read (pure); ``probe`` reads the cluster and Prometheus."""
