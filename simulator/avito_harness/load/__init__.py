"""``avito-harness load``: many shops' customers and their CRM against a gateway deployment, on Locust, judged.

:mod:`.plan` sets the shops up (accounts, chats, the gateway's accounts file, subscriptions), ``locust-users/locustfile.py``
(a file Locust loads, never imported: gevent would patch the importing process) holds Locust's users (customers writing through the fake Avito, the CRM replying through the gateway), and
:mod:`.judge` reads what the fakes saw and what the users sent: lost, duplicated, out of order, latencies.
"""
