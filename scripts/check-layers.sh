#!/usr/bin/env bash
# check-layers.sh - the sources under src/ are layered; a file may include
# only project headers of a lower layer (and its own header).  The table
# below is the architecture: a new file gets a row before it can build in
# the suite.  Also checked: the bottom files stay free of httpd (codec,
# counters: plain C; crypto: APR and OpenSSL only), so that they can be
# unit tested and fuzzed without a server.
# Exits 1 and names every include that points up or sideways.
set -euo pipefail
cd "$(dirname "$0")/.."
exec perl -e '
    use strict;
    use warnings;
    # layer => files (base names; NAME.c and NAME.h share their layer)
    my @layers = (
        [qw(codec counters)],                   # pure C
        [qw(crypto cs_private)],                # SHA-256/HMAC; logging
        [qw(cache store auth)],                 # engine parts
        [qw(queue peer)],                       # job files; HTTP client
        [qw(config)],                           # the configuration
        [qw(dbconn mcache)],                    # database connections; memcached
        [qw(registry)],                         # MariaDB, cluster queries
        [qw(names replicate request scrub holders)], # namespace; engine; helpers; scrub; fetched holders
        [qw(read move)],                        # GET, the fetch; MOVE
        [qw(write peer_serve status)],          # PUT/DELETE, peers, status
        [qw(drive dav_lock admin)],             # watchdog threads; DAV locks; admin
        [qw(dav)],                              # the WebDAV provider
        [qw(mod_clusterstorage)],               # hooks, dispatcher
    );
    my %plain   = map { $_ => 1 } qw(codec counters);    # no APR, no httpd
    my %nohttpd = map { $_ => 1 } qw(codec counters crypto);
    my $httpd_hdr = qr/^(?:httpd|http_\w+|ap_\w+|mod_\w+|util_\w+|unixd|scoreboard)\.h$/;
    my %layer;
    for my $i (0 .. $#layers) {
        $layer{$_} = $i for @{ $layers[$i] };
    }
    my @bad;
    my @files = sort glob("src/*.c src/*.h");
    die "no sources under src/\n" unless @files;
    for my $f (@files) {
        my ($base) = $f =~ m{^src/(\w+)\.[ch]$}
            or do { push @bad, "$f: not NAME.c or NAME.h"; next };
        if (!exists $layer{$base}) {
            push @bad, "$f: not in the layer table of scripts/check-layers.sh";
            next;
        }
        open my $fh, "<", $f or die "$f: $!";
        while (my $line = <$fh>) {
            next unless $line =~ /^\s*#\s*include\s*([<"])([^>"]+)[>"]/;
            my ($kind, $inc) = ($1, $2);
            if ($kind eq q{"} && $inc =~ /^(\w+)\.h$/ && exists $layer{$1}) {
                my $to = $1;
                next if $to eq $base;
                if ($layer{$to} >= $layer{$base}) {
                    push @bad, sprintf "%s:%d includes %s (layer %d) from "
                        . "layer %d", $f, $., $inc, $layer{$to}, $layer{$base};
                }
                next;
            }
            if ($kind eq q{"} && -e "src/$inc") {
                push @bad, "$f:$.: includes $inc, which has no layer";
                next;
            }
            if ($nohttpd{$base} && $inc =~ $httpd_hdr) {
                push @bad, "$f:$.: $base must not include httpd ($inc)";
            }
            if ($plain{$base} && $inc =~ /^apr/) {
                push @bad, "$f:$.: $base must be plain C (includes $inc)";
            }
        }
    }
    if (@bad) {
        print STDERR "layer check failed:\n", map { "  $_\n" } @bad;
        exit 1;
    }
    printf "layers: %d files, every include points down\n", scalar @files;
'
