# scripts/lib.sh - shell helpers shared by scripts/services.sh,
# scripts/demo.sh and bench/run.sh (sourced; the caller defines die()).

# Random ports come from below the kernel's ephemeral range (so an outgoing
# connection cannot grab them between our probe and the daemon's bind).
PORT_MIN=20000
PORT_MAX=32000

now_ds() { # current time in deciseconds since boot (monotonic)
    local s
    s=$(</proc/uptime)
    s=${s%% *}
    echo $((10#${s%.*} * 10 + 10#${s#*.} / 10))
}

# wait_until TIMEOUT_SECONDS CMD...: poll CMD every 0.1 s until it succeeds.
wait_until() {
    local timeout=$1
    shift
    local deadline=$(($(now_ds) + timeout * 10))
    while true; do
        "$@" && return 0
        (($(now_ds) >= deadline)) && return 1
        sleep 0.1
    done
}

pid_alive() { [[ -n "${1:-}" ]] && kill -0 "$1" 2>/dev/null; }
pid_dead() { ! pid_alive "$1"; }

# port_free PORT: true if 127.0.0.1:PORT can be bound (and nothing listens on
# the wildcard address).  SO_REUSEADDR like mariadbd/memcached use, otherwise
# TIME_WAIT leftovers of the previous instance would make a just-stopped
# port look busy.
port_free() {
    perl -MSocket -e '
        socket(my $s, PF_INET, SOCK_STREAM, 0) or exit 2;
        setsockopt($s, SOL_SOCKET, SO_REUSEADDR, 1) or exit 2;
        bind($s, pack_sockaddr_in($ARGV[0], inet_aton("127.0.0.1"))) or exit 1;
        exit 0;' "$1"
}

# pick_port [EXCLUDE...]: a currently free random port, none of EXCLUDE.
pick_port() {
    local p i
    for ((i = 0; i < 200; i++)); do
        p=$((PORT_MIN + (RANDOM * 32768 + RANDOM) % (PORT_MAX - PORT_MIN)))
        [[ " $* " == *" $p "* ]] && continue
        port_free "$p" && { echo "$p"; return 0; }
    done
    die "could not find a free TCP port in $PORT_MIN..$PORT_MAX"
}

# sed_escape STRING: STRING for the replacement side of s|...|...|.
sed_escape() { printf '%s' "$1" | sed -e 's/[\\|&]/\\&/g'; }
