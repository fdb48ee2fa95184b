"""The application: the cpwatch command line, the worker and the supervisor of cpwatch run."""
