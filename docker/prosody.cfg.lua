-- Prosody for the compose deployment: one virtual host, the platform's MUC service,
-- accounts for the bridge and the simulator (registered by the compose command).
admins = { }
modules_enabled = { "saslauth", "tls", "disco", "ping", "bosh", "posix" }
modules_disabled = { "s2s", "offline" }
-- No mod_limits: Debian's default throttles a client to a few kB/s, far too little for
-- the bridge's single connection.
network_settings = { nagle = false }
authentication = "internal_hashed"
storage = "internal"
log = { { levels = { min = "info" }, to = "console" } }
-- Inside the compose network only; the bridge connects with tls = "none".
c2s_require_encryption = false
allow_unencrypted_plain_auth = true
http_ports = { 5280 }
http_interfaces = { "*" }
consider_bosh_secure = true

VirtualHost "converja.local"

Component "conference.converja.local" "muc"
    -- A new room would otherwise stay locked until configured.
    muc_room_locking = false
    restrict_room_creation = false
    -- The bridge keeps one agent.<id> room per connected agent; Prosody's default cache of
    -- 100 rooms would evict and reload rooms constantly beyond 100 agents.
    muc_room_cache_size = 100000
