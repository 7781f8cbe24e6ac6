# Malformed peer responses (SPEC §4, §6 promises 3 and 8): a cold node
# whose only registered holder is a misbehaving fake peer never stores or
# serves what it sends (truncated, corrupted, wrong version or SHA-256
# headers, garbage, silence) but answers 503 with Retry-After, leaves no
# file or temp file and counts the failure; with a good holder registered
# too, the next holder is tried and the read succeeds.
use strict;
use warnings;
use Apache::Test qw(-withtestmore);
use lib 't/lib';
use CSTest qw(req unique_key wait_for tmp_files sql sql_str);
use CSNode;
use Digest::SHA qw(sha256_hex hmac_sha256_hex);
use File::Temp qw(tempdir);
use IO::Socket::INET ();
use POSIX ();
use Time::HiRes qw(time);

my $EVIL = 'evil17';
my $main_pid = $$;
my ($fake_pid, $key);
END {
    local $?;
    if ($$ == $main_pid) {
        if ($fake_pid) { kill 'KILL', $fake_pid; waitpid $fake_pid, 0 }
        eval { sql("DELETE FROM cs_replicas WHERE node = '$EVIL'") };
        eval { sql("DELETE FROM cs_nodes WHERE name = '$EVIL'") };
    }
}

my $A = CSNode->new('n17a', replicas => 1);
my $C = CSNode->new('n17c', replicas => 1, timeout => 2);
$_->start for $A, $C;

$key = '/files/' . unique_key('badpeer') . '.bin';
my $body = join '', map { chr(($_ * 53 + 3) % 256) } 1 .. 200_000;
my $sha = sha256_hex($body);
my $r = req(PUT => $A->url . $key, $body);
is $r->code, 201, 'PUT on A (replicas 1: A is the only holder)';
my $v = $r->header('X-ClusterStorage-Version');

# ---- the fake peer --------------------------------------------------------
# Answers a peer GET of $key as the file "mode" in its directory says; any
# other request gets a quick 503.  Every request head is logged.
my $dir = tempdir(CLEANUP => 1);
sub set_mode {
    open my $fh, '>', "$dir/mode" or die $!;
    print $fh $_[0];
    close $fh;
}
sub fake_requests {
    open my $fh, '<', "$dir/log" or return ();
    local $/ = "\0";
    return map { chomp; $_ } <$fh>;
}
set_mode('ok');
my $srv = IO::Socket::INET->new(LocalAddr => '127.0.0.1', LocalPort => 0,
                                Listen => 64, ReuseAddr => 1)
    or die "fake peer: $!";
my $port = $srv->sockport;
$fake_pid = fork;
die "fork: $!" unless defined $fake_pid;
if (!$fake_pid) {
    my @held;       # connections that are never answered
    while (1) {
        my $c = $srv->accept or next;
        my $head = '';
        while ($head !~ /\r\n\r\n/) {
            my $n = sysread $c, my $buf, 8192;
            last unless $n;
            $head .= $buf;
        }
        open my $lf, '>>', "$dir/log";
        print $lf "$head\0";
        close $lf;
        my $mode = do { open my $fh, '<', "$dir/mode"; local $/; <$fh> };
        my ($method, $path) = $head =~ /^(\S+) (\S+)/;
        $path //= '';
        if (($method // '') ne 'GET' || $path ne $key) {
            syswrite $c, "HTTP/1.1 503 Busy\r\nContent-Length: 0\r\n"
                       . "Connection: close\r\n\r\n";
            close $c;
            next;
        }
        my ($len, $ver, $hsha, $data) = (length $body, $v, $sha, $body);
        my $head_only;
        if ($mode eq 'truncated') {
            $data = substr($body, 0, length($body) / 2);
        }
        elsif ($mode eq 'corrupted') {
            $data = $body;
            substr($data, 100_000, 1) = chr(ord(substr($data, 100_000, 1)) ^ 1);
        }
        elsif ($mode eq 'version') {
            $ver = $v + 1;
        }
        elsif ($mode eq 'sha') {
            $hsha = sha256_hex('something else');
        }
        elsif ($mode eq 'longer') {
            $len = length($body) + 1000;
            $data = $body . ("\0" x 1000);
        }
        elsif ($mode eq 'chunked') {
            $head_only = "HTTP/1.1 200 OK\r\nX-ClusterStorage-Version: $v\r\n"
                . "X-ClusterStorage-SHA256: $sha\r\n"
                . "Transfer-Encoding: chunked\r\nConnection: close\r\n\r\n"
                . sprintf("%x\r\n", length $body) . $body . "\r\n0\r\n\r\n";
        }
        elsif ($mode eq 'garbage') {
            $head_only = "HTXP/9.9 !!! garbage\r\n\x00\x01\x02\r\n\r\n";
        }
        elsif ($mode eq 'silent') {
            push @held, $c;
            next;
        }
        syswrite $c, $head_only // (
            "HTTP/1.1 200 OK\r\nX-ClusterStorage-Version: $ver\r\n"
            . "X-ClusterStorage-SHA256: $hsha\r\nContent-Length: $len\r\n"
            . "Connection: close\r\n\r\n" . $data);
        close $c;
    }
}
close $srv;

# Register the fake peer as a live node and the only holder of the key.
sql("INSERT INTO cs_nodes (name, url, heartbeat, period, started) VALUES "
    . "('$EVIL', 'http://127.0.0.1:$port', UNIX_TIMESTAMP(), 100000, "
    . "UNIX_TIMESTAMP()) ON DUPLICATE KEY UPDATE url = VALUES(url), "
    . "heartbeat = VALUES(heartbeat), period = VALUES(period)");
my $qk = sql_str($key);
sql("DELETE FROM cs_replicas WHERE path = $qk");
sql("INSERT INTO cs_replicas (path, node, version, stored_at) VALUES "
    . "($qk, '$EVIL', $v, UNIX_TIMESTAMP())");
ok wait_for(5, sub { join(',', $C->live_holders($key)) eq $EVIL }),
    'the fake peer is the only live holder'
    or diag explain $C->entry($key);

my @cases = (
    truncated => 'a truncated body (right Content-Length, fewer bytes)',
    corrupted => 'the right length but corrupted bytes',
    version   => 'a wrong X-ClusterStorage-Version',
    sha       => 'a wrong X-ClusterStorage-SHA256',
    longer    => 'another length than the registry',
    chunked   => 'a chunked body',
    garbage   => 'a garbage status line',
    silent    => 'no answer at all',
);
while (my ($mode, $what) = splice @cases, 0, 2) {
    set_mode($mode);
    my $seen = () = fake_requests();
    my $fails = $C->counter('fetch_failures');
    my $t0 = time;
    my $g = req(GET => $C->url . $key);
    my $took = time - $t0;
    is $g->code, 503, "fake holder sends $what: 503" or diag $C->log_tail;
    ok $g->header('Retry-After'), '... with Retry-After';
    isnt sha256_hex($g->content), $sha, '... and not the file';
    cmp_ok $took, '<', 8, '... within the peer timeout (2 s) and a margin'
        or diag "took $took s";
    my @reqs = fake_requests();
    cmp_ok scalar(@reqs), '>', $seen, '... after asking the fake peer';
    ok !-e $C->root . $key, '... no file stored for the key';
    is_deeply [tmp_files('n17c')], [], '... no temp file left';
    cmp_ok $C->counter('fetch_failures'), '>', $fails,
        '... the failure was counted';
}

# The request C sent was a proper peer fetch.
my ($last) = grep { m{^GET \Q$key\E } } reverse fake_requests();
ok $last, 'the fake peer received peer fetches';
my ($ver_h) = ($last // '') =~ /^X-ClusterStorage-Version: *(\S+)/mi;
my ($node, $ts, $mac) = ($last // '')
    =~ /^X-ClusterStorage-Auth: *(\S+) (\d+) ([0-9a-f]{64})\r?$/mi;
is $ver_h, $v, 'asking for the current version';
is $node, 'n17c', 'signed by C';
is $mac, hmac_sha256_hex("GET\n$key\n$v\n" . ($ts // ''),
                         'test-secret-0123456789abcdef'),
    'with the right MAC';

# A good holder registered too: the garbage answer is skipped.
set_mode('garbage');
sql("INSERT INTO cs_replicas (path, node, version, stored_at) VALUES "
    . "($qk, 'n17a', $v, UNIX_TIMESTAMP())");
ok wait_for(5, sub { join(',', $C->live_holders($key)) eq "$EVIL,n17a" }),
    'A is a holder again, next to the fake peer'
    or diag explain $C->entry($key);
my $seen = () = fake_requests();
my $fails = $C->counter('fetch_failures');
$r = req(GET => $C->url . $key);
is $r->code, 200, 'GET on C with a good and a bad holder: 200'
    or diag $C->log_tail;
is sha256_hex($r->content), $sha, 'right bytes';
is $r->header('X-ClusterStorage-Version'), $v, 'right version';
is CSTest::file_sha256($C->root . $key), $sha, "C's stored copy is right";
is_deeply [tmp_files('n17c')], [], 'no temp file left';
# Holders are tried in registry order; when the fake one was asked first,
# its garbage was counted as one failure before A answered.
if ((my $asked = fake_requests()) > $seen) {
    is $C->counter('fetch_failures') - $fails, 1,
        'the fake holder was asked first and its answer counted as a failure';
}
else {
    note 'A was asked before the fake holder';
}

done_testing;
