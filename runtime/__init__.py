"""Engine plumbing every stage shares: the Faust app and its topics, plain consumer groups,
input positions, dead-lettering and the Elasticsearch client and bulk writer."""
