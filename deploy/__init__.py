"""The local stack: install and run single-node Kafka and Elasticsearch without Docker."""
