"""Multi-node launches: the hostfile format and the pre-flight check of the hosts it names."""
