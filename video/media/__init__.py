"""Media core of live video sessions: the Janus media server and the aiortc analysis peer.

Nothing here touches the database or HTTP: the signalling layer (``video/``) calls
these functions and owns authorisation, KYC case binding and persistence.

- ``janus_config`` / ``janus_process``: generate Janus's configuration and run the
  Debian ``janus`` binary with it (HTTP API on loopback, protected by a secret).
- ``janus_client`` / ``videoroom``: an async client of Janus's HTTP API and of its
  VideoRoom plugin (a room per session, publishers, subscribers).
- ``analysis_peer`` / ``analysis_worker``: the aiortc subscriber that decodes the
  customer's video and samples frames for kyc/, in its own process.
- ``recordings``: turn Janus's ``.mjr`` recordings into WebM with a checksum.
- ``ice`` / ``netns``: keep every ICE candidate on the addresses we allow, and the
  private network namespace the media tests run in.
"""
