# Failover (SPEC §6 promise 5): a read succeeds while at least one holder
# of the current version is up, dead peers are skipped within
# ClusterStoragePeerTimeout; with every holder gone the answer is 503 with
# Retry-After and nothing is left behind on the asking node.
use strict;
use warnings;
use Apache::Test qw(-withtestmore);
use lib 't/lib';
use CSTest qw(req unique_key wait_for tmp_files);
use CSNode;
use Digest::SHA qw(sha256_hex);
use Time::HiRes qw(time);

# Replicas 1 everywhere: the holders are exactly the writer and the nodes
# that read the key, and no node copies it on its own.
my %n;
for my $name (qw(n13a n13b n13c n13d)) {
    $n{$name} = CSNode->new($name, replicas => 1, timeout => 2);
    $n{$name}->start;
}
my ($A, $B, $C, $D) = @n{qw(n13a n13b n13c n13d)};

my $key = '/files/' . unique_key('failover') . '/data.bin';
my $body = join '', map { chr(($_ * 29 + 7) % 256) } 1 .. 400_000;
my $sha = sha256_hex($body);

# A hung holder (SIGSTOP: connections are accepted, nothing is answered)
# is skipped within the peer timeout.
my $hkey = '/files/' . unique_key('failover-hung') . '.bin';
my $hbody = "hung holder\n" x 20_000;
is req(PUT => $A->url . $hkey, $hbody)->code, 201, 'PUT of a second key on A';
is req(GET => $B->url . $hkey)->code, 200, 'GET on B (B becomes a holder)';
ok wait_for(5, sub { join(',', $C->live_holders($hkey)) eq 'n13a,n13b' }),
    'A and B hold it' or diag explain $C->entry($hkey);
{
    my $fails = $C->counter('fetch_failures');
    $A->freeze;
    my $t0 = time;
    my $g = req(GET => $C->url . $hkey);
    my $took = time - $t0;
    $A->thaw;
    is $g->code, 200, 'GET on cold node C with holder A hung: 200'
        or diag $C->log_tail;
    is sha256_hex($g->content), sha256_hex($hbody), 'right bytes';
    cmp_ok $took, '<', 2 + 5, 'within the peer timeout (2 s) and a margin'
        or diag "took $took s";
    note sprintf 'took %.2f s; %d failed fetch attempt(s) first', $took,
        $C->counter('fetch_failures') - $fails;
    # Let A's heartbeat catch up, so that below A is a dead node the
    # registry still calls up.
    ok wait_for(10, sub {
        my $st = $C->status or return 0;
        grep { $_->{name} eq 'n13a' && $_->{heartbeat_age} <= 1 }
            @{ $st->{nodes} };
    }), 'A is back to a fresh heartbeat';
}

my $r = req(PUT => $A->url . $key, $body);
is $r->code, 201, 'PUT on A';
my $v = $r->header('X-ClusterStorage-Version');
$r = req(GET => $B->url . $key);
is $r->code, 200, 'GET on B (B fetches it and becomes a holder)';
ok wait_for(5, sub { join(',', $C->live_holders($key)) eq 'n13a,n13b' }),
    'A and B are the two live holders'
    or diag explain $C->entry($key);

# One holder dies; the registry still calls it up for a few seconds, so
# the cold node may well try it first.
ok $A->kill9, 'A was killed';
my $fails0 = $C->counter('fetch_failures');
my $t0 = time;
$r = req(GET => $C->url . $key);
my $took = time - $t0;
is $r->code, 200, 'GET on cold node C with one holder dead: 200'
    or diag $C->log_tail;
is sha256_hex($r->content), $sha, 'right bytes';
is $r->header('X-ClusterStorage-Version'), $v, 'right version';
cmp_ok $took, '<', 10, 'answered within the peer timeout (2 s) and a margin'
    or diag "took $took s";
note sprintf 'took %.2f s; %d failed fetch attempt(s) first', $took,
    $C->counter('fetch_failures') - $fails0;
is_deeply [tmp_files('n13c')], [], 'no temp file left on C';

# Every holder gone (B, and C which now holds it too): 503.
ok $B->kill9 && $C->kill9, 'B and C were killed too';
my $un0 = $D->counter('unavailable');
$t0 = time;
$r = req(GET => $D->url . $key);
$took = time - $t0;
is $r->code, 503, 'GET on cold node D with no holder reachable: 503'
    or diag $D->log_tail;
ok $r->header('Retry-After'), 'with Retry-After';
isnt sha256_hex($r->content), $sha, 'and not the bytes';
cmp_ok $took, '<', 10, 'answered within the peer timeouts and a margin'
    or diag "took $took s";
ok !-e $D->root . $key, 'D has no file for the key';
is_deeply [$D->files], [], 'nor any other file';
is_deeply [tmp_files('n13d')], [], 'nor a temp file';
is $D->counter('unavailable'), $un0 + 1, 'D counted one 503';

# A holder coming back makes the key readable again.
$B->start;
$r = req(GET => $D->url . $key);
is $r->code, 200, 'GET on D once B is back: 200';
is sha256_hex($r->content), $sha, 'right bytes';

done_testing;
