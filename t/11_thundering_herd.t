# No thundering herd (SPEC §6 promise 4): 40 concurrent GETs on a node
# that lacks a file all get the right bytes, and cause exactly one peer
# transfer (one fetch on the cold node, one answer on the holder).  The
# holder is frozen (SIGSTOP) until every one of the 40 requests has been
# sent in full, so all 40 are in flight before any can be answered, on a
# fast machine or a slow (AddressSanitizer) build alike.
use strict;
use warnings;
use Apache::Test qw(-withtestmore);
use lib 't/lib';
use CSTest qw(req unique_key wait_for tmp_files);
use CSNode;
use Digest::SHA qw(sha256_hex);
use File::Temp qw(tempdir);
use POSIX ();
use IO::Socket::INET ();
use Time::HiRes ();

# A holds the file alone (replicas 1); B is cold.
my $A = CSNode->new('n11a', replicas => 1);
$A->start;
# B's one fetch waits for A while A is frozen: at most the 10 s deadline
# below, well inside this ClusterStoragePeerTimeout (CSNode's default of
# 3 s is too close for a loaded machine).  A frozen that long misses its
# heartbeats and may look down, but B still tries a holder that looks down
# (cs_fetch's second pass).
my $B = CSNode->new('n11b', replicas => 1, timeout => 30);
$B->start;

# A is thawed whatever happens to this test (CSNode's own END block only
# stops the nodes afterwards); a SIGCONT to a running node is harmless.
my $MAIN_PID = $$;
END { $A->thaw if $A && $$ == $MAIN_PID }

my $key = '/files/' . unique_key('herd') . '.bin';
my $body = join '', map { chr((($_ * 131) >> 3) % 256) } 1 .. 1_000_000;
my $sha = sha256_hex($body);

my $r = req(PUT => $A->url . $key, $body);
is $r->code, 201, 'PUT of ~1 MB on A is 201';
my $v = $r->header('X-ClusterStorage-Version');
is_deeply [$A->live_holders($key)], ['n11a'], 'A is the only holder'
    or diag explain $A->entry($key);
ok !-e $B->root . $key, 'B has no copy yet';

my $fetches0 = $B->counter('peer_fetches');
my $bhits0 = $B->counter('hits');
my $served0  = $A->counter('peer_served');
ok defined $fetches0 && defined $served0, 'counters readable'
    or diag explain [$B->status, $A->status];

# Every thread of A's httpd (its process group, which CSNode::freeze
# signals) is stopped: how many, or 0 while one still runs.
sub holder_stopped {
    my $pgid = $A->pid or return 0;
    my $n = 0;
    for my $stat (glob '/proc/[0-9]*/task/[0-9]*/stat') {
        open my $fh, '<', $stat or next;
        my $line = <$fh>;
        next unless defined $line;
        # "TID (COMM) STATE PPID PGRP ...", COMM may hold spaces.
        my ($state, undef, $pgrp) =
            split ' ', substr($line, rindex($line, ')') + 1);
        next unless defined $pgrp && $pgrp == $pgid;
        next if $state eq 'Z' || $state eq 'X';     # exited, runs nothing
        return 0 unless $state eq 'T';
        $n++;
    }
    return $n;
}

# 40 clients, released at the same moment through a pipe that the parent
# closes once all are forked and A is frozen.  Each child touches a marker
# file once its whole request is out.
my $N = 40;
my ($port) = $B->url =~ /:(\d+)\z/;
my $out = tempdir(CLEANUP => 1);
pipe(my $gate_r, my $gate_w) or die "pipe: $!";
my @pids;
for my $i (1 .. $N) {
    my $pid = fork;
    die "fork: $!" unless defined $pid;
    if (!$pid) {
        # Connect first, then wait at the gate: the requests then arrive
        # together instead of trickling in as the children get going.
        my $s = IO::Socket::INET->new(PeerAddr => '127.0.0.1',
                                      PeerPort => $port, Timeout => 30)
            or POSIX::_exit(1);
        # All of the request but its final CRLF goes out before the gate.
        my $req = "GET $key HTTP/1.0\r\nHost: 127.0.0.1:$port\r\n";
        (syswrite($s, $req) // -1) == length $req or POSIX::_exit(1);
        close $gate_w;
        my $go = <$gate_r>;     # EOF when the parent closes the gate
        (syswrite($s, "\r\n") // -1) == 2 or POSIX::_exit(1);
        my $t0 = Time::HiRes::time();
        open my $mark, '>', "$out/sent.$i" or POSIX::_exit(1);
        close $mark;
        my $resp = '';
        while (1) {
            my $n = sysread $s, my $buf, 65536;
            last unless $n;
            $resp .= $buf;
        }
        my $t1 = Time::HiRes::time();
        my ($head, $c) = split /\r\n\r\n/, $resp, 2;
        $head //= '';
        $c //= '';
        my ($code) = $head =~ m{^HTTP/1\.\d (\d{3})};
        my ($got_v) = $head =~ /^X-ClusterStorage-Version: *(\S+)/mi;
        open my $fh, '>', "$out/$i" or POSIX::_exit(1);
        printf $fh "%s %s %s %d %.6f %.6f\n", $code // 0, sha256_hex($c),
            $got_v // '-', length $c, $t0, $t1;
        close $fh;
        POSIX::_exit(0);
    }
    push @pids, $pid;
}
close $gate_r;
my $sent = 0;
my $thawed_at;
{
    # An interrupted run still thaws A (through the END block above).
    local @SIG{qw(INT TERM HUP)} = (sub { exit 1 }) x 3;
    $A->freeze;
    my $stopped = wait_for(5, \&holder_stopped);
    ok $stopped, 'the holder is frozen (all its httpd threads stopped)';
    note "$stopped httpd threads of A stopped";
    my $released_at = Time::HiRes::time();
    close $gate_w;
    # Deadline, not a fixed sleep: the children only have to write two
    # bytes and create a file (B reads the requests, A stays stopped).
    my $markers = sub { my @m = glob "$out/sent.*"; scalar @m };
    wait_for(10, sub { $markers->() >= $N });
    $sent = $markers->();
    $thawed_at = Time::HiRes::time();
    $A->thaw;
    is $sent, $N, "all $N requests were sent in full while the holder was "
        . 'frozen';
    note sprintf '%d requests sent %.3f s after the gate opened', $sent,
        $thawed_at - $released_at;
}
waitpid $_, 0 for @pids;

my (%codes, $right, @bad, @spans);
for my $i (1 .. $N) {
    open my $fh, '<', "$out/$i" or do { push @bad, "$i: no result"; next };
    my $line = <$fh>;
    chomp $line;
    my ($code, $got_sha, $got_v, $len, $t0, $t1) = split / /, $line;
    push @spans, [$t0, $t1];
    $codes{$code}++;
    if ($code == 200 && $got_sha eq $sha && $got_v eq $v) {
        $right++;
    }
    else {
        push @bad, "$i: $line";
    }
}
is $right, $N, "all $N concurrent GETs on the cold node got 200 with the "
    . 'right bytes and version'
    or diag explain { codes => \%codes, bad => \@bad }, $B->log_tail;

# The herd really was one (else "one fetch" would prove nothing): B had
# to fetch from A for every one of them, so no answer came before A was
# thawed, and by then all 40 requests had been sent.
my ($first_end) = sort { $a <=> $b } map { $_->[1] } @spans;
$first_end //= 0;
cmp_ok $first_end, '>', $thawed_at,
    'no answer arrived before the holder was thawed';
my $in_flight = grep { $_->[0] < $first_end } @spans;
is $in_flight, $N, "all $N requests were in flight when the first answer "
    . 'arrived';
note sprintf 'first answer %.3f s after the thaw', $first_end - $thawed_at;

is $B->counter('peer_fetches') - $fetches0, 1,
    'the cold node made exactly one peer fetch'
    or diag $B->log_tail;
is $B->counter('hits'), $bhits0,
    'none of the 40 was a local hit: all of them waited for the one fetch';
is $A->counter('peer_served') - $served0, 1,
    'the holder answered exactly one peer fetch'
    or diag $A->log_tail;
is sha256_hex(do { local $/; open my $fh, '<:raw', $B->root . $key; <$fh> }
              // ''), $sha, 'the cold node now holds the right bytes';
is_deeply [tmp_files('n11b')], [], 'no temp files left on the cold node';

# Later requests are local hits.
my $hits0 = $B->counter('hits');
is req(GET => $B->url . $key)->code, 200, 'another GET on B';
is $B->counter('peer_fetches') - $fetches0, 1, 'which was not fetched again';
is $B->counter('hits') - $hits0, 1, 'but served from the local copy';

done_testing;
