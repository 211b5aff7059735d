"""The peer benchmark: the contact mail sent by relieve and by what people would pick instead.

`bench/peers.py` is the command; here live its parts: `systems/` one adapter per system (its Django
settings, how the view hands a message over, which worker processes to start), `stack.py` the
database, web server, worker processes and SMTP sink of one system, `load.py` the posting clients,
`trial.py` one measurement, `report.py` the tables and the last line.
"""
