"""The broker adapter: everything that depends on faust's and aiokafka's internals, and on which
broker the pipeline talks to, in one package.

- ``broker``: the two broker profiles (Apache Kafka, the embedded Tansu broker), which one a
  cluster is (decided there only), the settings as each client library's options, the admin
  client and the topics.
- ``transport``: the workers' faust transport, one class for both brokers with their differences
  as data, and the helpers plain aiokafka consumers need (a true end offset on Tansu).
- ``tables``: the workers' faust tables and their store (memory, written through to RocksDB).
- ``lag``: the agents' consumer lag per topic, read from faust's consumer at each scrape.

No other module touches a private attribute of faust, mode or aiokafka
(``tests/unit/test_private_access.py`` scans for one).
"""
