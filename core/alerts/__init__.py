"""Alerting: metrics read from aggregates, rules as data, the evaluator (state machine under a lease), delivery
(contact points, routing, outbox, senders) and the run loop. Changes made by people go through core.services.alerts."""
