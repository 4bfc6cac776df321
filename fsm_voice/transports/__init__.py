"""Transports: how a call's messages reach us (Twilio Media Streams and its simulator)."""
