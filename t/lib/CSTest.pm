package CSTest;
# Helpers for the mod_clusterstorage Apache::Test suite: HTTP requests to a
# node, the private services (scripts/services.sh), raw memcached access,
# and waiting for a condition with a deadline (never a blind sleep).
use strict;
use warnings;

use Exporter 'import';
use Digest::SHA qw(sha256_hex hmac_sha256_hex);
use File::Find ();
use HTTP::Request ();
use IO::Socket::INET ();
use LWP::UserAgent ();
use Time::HiRes qw(time sleep);
use POSIX ();

our @EXPORT_OK = qw(req node_url svc sql mc_key mc_raw mc_set_raw wait_for
                    storage_root tmp_files raw_http file_sha256 unique_key
                    mc_get sql_str registry_rows restart_server
                    peer_auth node_status node_counter local_files php_tap
                    timed_req concurrent_gets race lock_round galera
                    nodes_gone);

my $REPO = $ENV{CS_REPO} || do {
    require Cwd;
    require File::Basename;
    Cwd::abs_path(File::Basename::dirname(__FILE__) . '/../..');
};

# Base URL of the node under Apache::Test (the main server, node n1).
sub node_url {
    require Apache::TestRequest;
    return 'http://' . Apache::TestRequest::hostport();
}

my $ua;

# req(METHOD, PATH, BODY, HEADER => VALUE ...) -> HTTP::Response
# PATH may be a full URL (another node) or a path on node n1.
sub req {
    my ($method, $path, $body, @headers) = @_;
    my $url = $path =~ m{^https?://} ? $path : node_url() . $path;
    $ua ||= LWP::UserAgent->new(keep_alive => 0, timeout => 30);
    my $r = HTTP::Request->new($method, $url, [@headers]);
    if (defined $body) {
        $r->content($body);
        $r->header('Content-Length' => length $body);
    }
    return $ua->request($r);
}

# A key nobody used before in this run (tests share one registry).
my $seq = 0;
sub unique_key {
    my ($prefix) = @_;
    $seq++;
    return sprintf '%s-%d-%d-%d', $prefix || 'k', $$, int(time * 1000), $seq;
}

# Run scripts/services.sh with the suite's state directory.
sub svc {
    my @args = @_;
    my $out = qx{bash "$REPO/scripts/services.sh" @args 2>&1};
    die "services.sh @args failed: $out" if $?;
    return $out;
}

sub sql {
    my ($stmt) = @_;
    open my $fh, '-|', 'bash', "$REPO/scripts/services.sh", 'sql', $stmt
        or die "sql: $!";
    local $/;
    my $out = <$fh>;
    close $fh or die "sql failed: $stmt";
    $out = '' unless defined $out;
    $out =~ s/\s+\z//;
    return $out;
}

# nodes_gone(NAME...) -> true once every named node, stopped, has given
# its cache lease up (or it lapsed) and counts as down (its heartbeat is
# three periods old), within 20 s: the next test files then neither wait
# for its lease nor push to it.
sub nodes_gone {
    my $in = join ',', map { sql_str($_) } @_;
    return wait_for(20, sub {
        sql("SELECT COUNT(*) FROM cs_nodes WHERE name IN ($in)"
            . " AND ((lease > 0 AND UNIX_TIMESTAMP() - heartbeat <= lease + 2)"
            . " OR UNIX_TIMESTAMP() - heartbeat <= 3 * period)") eq '0' });
}

# The memcached key the module uses for a cluster key.
sub mc_key { return 'cs1:' . sha256_hex($_[0]) }

# Send a raw memcached command, return the first reply line(s).
sub mc_raw {
    my ($cmd) = @_;
    my $s = IO::Socket::INET->new(PeerAddr => '127.0.0.1',
                                  PeerPort => $ENV{CS_MC_PORT},
                                  Timeout => 5) or return undef;
    print $s $cmd;
    my $reply = '';
    # Every reply ends in one of these lines; a memcached that says
    # nothing (frozen) is given 10 s.
    eval {
        local $SIG{ALRM} = sub { die "memcached did not answer\n" };
        alarm 10;
        while (defined(my $line = <$s>)) {
            $reply .= $line;
            last if $line =~ /^(STORED|NOT_STORED|END|DELETED|NOT_FOUND|ERROR|
                                 CLIENT_ERROR|SERVER_ERROR|EXISTS|VERSION|OK|
                                 TOUCHED)/x;
        }
        alarm 0;
    };
    alarm 0;
    close $s;
    return $reply;
}

sub mc_set_raw {
    my ($mckey, $value) = @_;
    return mc_raw(sprintf "set %s 0 300 %d\r\n%s\r\n", $mckey,
                  length $value, $value);
}

# wait_for(TIMEOUT_SECONDS, CODE) -> true once CODE returns true, false if
# the deadline passed first.  Polls every 50 ms.
sub wait_for {
    my ($timeout, $code) = @_;
    my $deadline = time + $timeout;
    while (1) {
        my $ok = $code->();
        return $ok if $ok;
        return 0 if time > $deadline;
        sleep 0.05;
    }
}

sub storage_root {
    my ($node) = @_;
    return "$REPO/t/storage/" . ($node || 'n1');
}

# Files under a node's .clusterstorage/tmp (leftovers are a defect).
sub tmp_files {
    my ($node) = @_;
    my $dir = storage_root($node) . '/.clusterstorage/tmp';
    # A node that never ran has no such directory: a test asking about it
    # is wrong, not clean.
    opendir my $dh, $dir or die "tmp_files: cannot open $dir: $!";
    my @f = grep { !/^\./ } readdir $dh;
    closedir $dh;
    return @f;
}

sub file_sha256 {
    my ($path) = @_;
    open my $fh, '<:raw', $path or return undef;
    my $d = Digest::SHA->new(256);
    $d->addfile($fh);
    return $d->hexdigest;
}

# raw_http(REQUEST_TEXT, HALF_CLOSE) -> (status, full response text)
# For requests LWP cannot send: bodies cut short, odd framing.
sub raw_http {
    my ($text, $half_close) = @_;
    require Apache::TestRequest;
    my ($host, $port) = split /:/, Apache::TestRequest::hostport();
    my $s = IO::Socket::INET->new(PeerAddr => $host, PeerPort => $port,
                                  Timeout => 30) or die "connect: $!";
    print $s $text;
    shutdown($s, 1) if $half_close;
    local $/;
    my $resp = <$s> // '';
    close $s;
    my ($status) = $resp =~ m{^HTTP/1\.\d (\d{3})};
    return ($status || 0, $resp);
}

# Kill every extra node started by a test (pid files under the state dir).
sub stop_all_nodes {
    my $dir = "$ENV{CS_STATE_DIR}/nodes";
    opendir my $dh, $dir or return;
    for my $f (grep { /\.pid$/ } readdir $dh) {
        open my $fh, '<', "$dir/$f" or next;
        my $pid = <$fh>;
        kill 'KILL', $pid if $pid && $pid =~ /^\d+$/;
    }
}

# mc_get(MCKEY) -> the raw value memcached holds for MCKEY, or undef.
sub mc_get {
    my ($mckey) = @_;
    my $reply = mc_raw("get $mckey\r\n");
    return undef unless defined $reply;
    return undef unless $reply =~ /^VALUE \S+ \d+ (\d+)\r\n/;
    my $len = $1;
    return substr($reply, length($&), $len);
}

# sql_str(TEXT) -> TEXT as a quoted SQL string literal.
sub sql_str {
    my ($s) = @_;
    $s =~ s/\\/\\\\/g;
    $s =~ s/'/''/g;
    return "'$s'";
}

# registry_rows(KEY) -> how many live-or-tombstone versions (version > 0)
# the registry holds for KEY.
sub registry_rows {
    my ($key) = @_;
    return sql('SELECT COUNT(*) FROM cs_files WHERE path = ' . sql_str($key)
               . ' AND version > 0');
}

# Stop and start the Apache::Test server (node n1); returns true once it
# answers again.  Apache::TestServer's progress lines go to STDERR so they
# cannot be mistaken for TAP.
sub restart_server {
    require Apache::Test;
    my $server = Apache::Test::config()->server;
    open my $saved, '>&', \*STDOUT or die "dup STDOUT: $!";
    open STDOUT, '>&', \*STDERR or die "redirect STDOUT: $!";
    my $stopped = $server->stop;
    my $ok = $stopped != -1 && $server->start;
    open STDOUT, '>&', $saved or die "restore STDOUT: $!";
    return $ok;
}

# The shared secret of the test nodes (t/lib/node.conf.tmpl, extra.conf.in).
our $SECRET = 'test-secret-0123456789abcdef';

# peer_auth(METHOD, KEY, VERSION, ts => T, node => NAME, secret => S)
# -> an X-ClusterStorage-Auth value as a node would send it (SPEC §4):
# "NODE TS MAC", MAC = hex HMAC-SHA256 over "METHOD\nKEY\nVERSION\nTS".
sub peer_auth {
    my ($method, $key, $version, %o) = @_;
    my $ts = defined $o{ts} ? $o{ts} : int(time);
    my $node = defined $o{node} ? $o{node} : 'n1';
    my $mac = hmac_sha256_hex("$method\n$key\n$version\n$ts",
                              defined $o{secret} ? $o{secret} : $SECRET);
    return "$node $ts $mac";
}

# node_status(BASE_URL) -> decoded /cluster-status?format=json, or undef.
sub node_status {
    my ($base) = @_;
    require JSON::PP;
    my $r = req(GET => $base . '/cluster-status?format=json');
    return undef unless $r->code == 200;
    return eval { JSON::PP::decode_json($r->content) };
}

# node_counter(BASE_URL, NAME) -> that node's counter NAME, or undef.
sub node_counter {
    my ($base, $name) = @_;
    my $s = node_status($base) or return undef;
    return $s->{counters}{$name};
}

# local_files(ROOT) -> the regular files under ROOT outside the module's
# working directory (.clusterstorage), relative to ROOT, sorted.
sub local_files {
    my ($root) = @_;
    my @f;
    return () unless -d $root;
    File::Find::find({ no_chdir => 1, wanted => sub {
        if (-d $_ && m{/\.clusterstorage\z}) {
            $File::Find::prune = 1;
            return;
        }
        push @f, substr($_, length($root)) if -f $_;
    } }, $root);
    return sort @f;
}

# Run COMMAND (a PHP script printing TAP) for at most LIMIT seconds
# (timeout(1) kills it and its children), turn each of its "ok"/"not ok"
# lines into a test named "LABEL: ...", then check that it exited 0 and
# ran all it planned.  Comment lines are shown (diag) around a failed
# test, else only in verbose mode (note).  Returns { comments => [ all
# its comment lines ], seconds => its run time }.
sub php_tap {
    my ($label, $limit, @command) = @_;
    require Test::More;
    my $start = time;
    my $pid = open my $fh, '-|';
    die "fork: $!" unless defined $pid;
    if (!$pid) {
        open STDERR, '>&', \*STDOUT or die "dup: $!";
        open STDIN, '<', '/dev/null' or die "stdin: $!";
        exec 'timeout', '-k', '5', $limit, @command
            or die "exec timeout $command[0]: $!";
    }
    my ($n, $plan, $failed, @comments, @all) = (0, undef, 0);
    while (my $line = <$fh>) {
        chomp $line;
        if ($line =~ /^(not )?ok (\d+)(?: - (.*))?$/) {
            $n++;
            $failed = !!$1;
            $failed ? Test::More::diag(join "\n", @comments)
                    : Test::More::note(join "\n", @comments) if @comments;
            @comments = ();
            Test::More::ok(!$1, "$label: " . ($3 // "test $2"));
        } elsif ($line =~ /^1\.\.(\d+)$/) {
            $plan = $1;
        } elsif ($line =~ /^#/) {
            $line =~ s/^# ?//;
            push @all, $line;
            if ($failed) { Test::More::diag($line) } else { push @comments, $line }
        } elsif ($line ne '') {
            Test::More::diag("$label: $line");     # PHP errors, stray output
        }
    }
    Test::More::note(join "\n", @comments) if @comments;
    close $fh;
    my $rc = $? >> 8;
    my $secs = time - $start;
    Test::More::is($rc, 0, sprintf '%s: php exited with status 0 (%.1f s)', $label, $secs)
        or Test::More::diag($rc == 124 ? "killed at its $limit s limit" : '');
    Test::More::ok(defined $plan && $plan == $n && $n > 0,
        "$label: php ran all its tests (" . ($plan // 'no plan') . " planned, $n seen)");
    return { comments => \@all, seconds => $secs };
}

# timed_req(METHOD, URL, BODY) -> (response, seconds): one request on a
# new connection, with a 30 s client timeout.
sub timed_req {
    my ($method, $url, $body) = @_;
    my $req = HTTP::Request->new($method, $url);
    if (defined $body) {
        $req->content($body);
        $req->header('Content-Length' => length $body);
    }
    my $ua = LWP::UserAgent->new(keep_alive => 0, timeout => 30);
    my $t0 = time;
    my $r = $ua->request($req);
    return ($r, time - $t0);
}

# concurrent_gets(CODE, N, STATUS) -> (how many did not get STATUS,
# seconds for all): N GETs at once, from forked children, of the URLs
# CODE returns for 1 .. N.  The children leave with _exit, so a test's
# END block (which may thaw a frozen service) runs in the test only.
sub concurrent_gets {
    my ($url_of, $n, $status) = @_;
    my $t0 = time;
    my @pids;
    for my $i (1 .. $n) {
        my $pid = fork // die "fork: $!";
        if (!$pid) {
            my $ua = LWP::UserAgent->new(keep_alive => 0, timeout => 30);
            my $res = $ua->get($url_of->($i));
            POSIX::_exit($res->code == $status ? 0 : 1);
        }
        push @pids, $pid;
    }
    my $bad = 0;
    for (@pids) { waitpid $_, 0; $bad++ if $? }
    return ($bad, time - $t0);
}

# race(CODE, ...) -> the line each CODE returned, in order: each CODE runs
# in a forked child, all released at once (one pipe closed), so their
# requests meet at the server.  The children leave with _exit.
sub race {
    my @codes = @_;
    pipe my $go_r, my $go_w or die "pipe: $!";
    my @kids;
    for my $code (@codes) {
        pipe my $res_r, my $res_w or die "pipe: $!";
        my $pid = fork // die "fork: $!";
        if (!$pid) {
            close $go_w;
            close $res_r;
            sysread $go_r, my $b, 1;    # returns when the parent closes it
            my $line = eval { $code->() } // "died: $@";
            $line =~ s/\n/ /g;
            print $res_w "$line\n";
            close $res_w;
            POSIX::_exit(0);
        }
        close $res_w;
        push @kids, [$pid, $res_r];
    }
    close $go_r;
    close $go_w;
    return map {
        my ($pid, $fh) = @$_;
        my $line = <$fh> // '';
        chomp $line;
        waitpid $pid, 0;
        $line;
    } @kids;
}

# galera() -> (member number => SQL port) of a Galera cluster of three
# members started (scripts/services.sh galera-start) for this test file;
# the members are stopped and their state deleted when the file ends.
my $GALERA_OWNER;
sub galera {
    my $out = svc('galera-start');
    $GALERA_OWNER = $$;
    return $out =~ /CS_GALERA_PORT(\d)=(\d+)/g;
}
END {
    local $?;
    svc('galera-stop', '--purge') if $GALERA_OWNER && $$ == $GALERA_OWNER;
}

# lock_round(PATH, URL ...) -> [status, lock token] of an exclusive
# Depth 0 LOCK of PATH sent at once through each URL (a node's base).
sub lock_round {
    my ($path, @urls) = @_;
    my $body = '<?xml version="1.0" encoding="utf-8"?>'
        . '<D:lockinfo xmlns:D="DAV:"><D:lockscope><D:exclusive/>'
        . '</D:lockscope><D:locktype><D:write/></D:locktype>'
        . '<D:owner>lock_round</D:owner></D:lockinfo>';
    return map { [split ' '] } race(map {
        my $url = $_;
        sub {
            my $r = req(LOCK => $url . $path, $body, Timeout => 'Second-60',
                        Depth => 0, 'Content-Type' => 'application/xml');
            my ($t) = ($r->header('Lock-Token') // '') =~ /<([^>]+)>/;
            return $r->code . ' ' . ($t // '');
        }
    } @urls);
}

1;
