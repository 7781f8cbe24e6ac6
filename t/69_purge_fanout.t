# A write tells every node with a cache lease to drop the key before it
# answers (PURGE).  With two peers hung (SIGSTOP: they accept connections
# and answer nothing), the write waits for them once, not once per hung
# peer: all of them are asked at the same time, so the answer comes
# within one ClusterStoragePeerTimeout (SPEC promise 9), and no node
# serves the old version afterwards (promise 1).
use strict;
use warnings;
use Apache::Test qw(-withtestmore);
use lib 't/lib';
use CSTest qw(req unique_key wait_for);
use CSNode;
use Time::HiRes qw(time);

# A peer timeout longer than a hung node's lease (two heartbeats of 1 s
# and the 2 s margin): the wait is the PURGEs', not the leases'.
my $T = 5;
my @n = map { CSNode->new("p69$_", replicas => 1, timeout => $T)->start }
    qw(a b c d);
my ($A, $B, $C, $D) = @n;

my $key = '/files/' . unique_key('fanout') . '.txt';
is req(PUT => $A->url . $key, "one\n")->code, 201, 'PUT v1 on A';
is req(GET => $_->url . $key)->content, "one\n", 'v1 read on ' . $_->name
    for $B, $C, $D;

# B and C hold cache leases (fresh heartbeats, as A sees them): a write
# must reach them, or wait for their leases to lapse.
sub leases_fresh {
    return wait_for(15, sub {
        my $st = $A->status or return 0;
        2 == grep { ($_->{name} eq 'p69b' || $_->{name} eq 'p69c')
                    && $_->{heartbeat_age} <= 1 } @{ $st->{nodes} };
    });
}

sub hung_write {
    my ($what, $method, $body, $want) = @_;
    ok leases_fresh(), "before the $what, B and C have fresh heartbeats";
    $B->freeze;
    $C->freeze;
    my $t0 = time;
    my $r = req($method => $A->url . $key, $body);
    my $took = time - $t0;
    $B->thaw;
    $C->thaw;
    is $r->code, $want, "$what with B and C hung: $want"
        or diag $A->log_tail;
    cmp_ok $took, '<', $T + 3,
        "answered within one peer timeout ($T s) and a margin, not one per hung peer"
        or diag sprintf 'took %.1f s', $took;
    note sprintf '%s took %.2f s', $what, $took;
}

hung_write('PUT v2', PUT => "two\n", 204);
for my $node ($B, $C, $D) {
    my $r = req(GET => $node->url . $key);
    is $r->content, "two\n", 'v2 served by ' . $node->name . ' after the PUT';
}
hung_write('DELETE', DELETE => undef, 204);
is req(GET => $_->url . $key)->code, 404,
    $_->name . ' answers 404 after the DELETE'
    for $B, $C, $D;

my $log = do { local (@ARGV, $/) = $A->error_log; <> // '' };
like $log, qr/CS071: .*node p69b could not be told/, "A's log names B as not told";
like $log, qr/CS071: .*node p69c could not be told/, "A's log names C as not told";

$_->stop for @n;
ok CSTest::nodes_gone(map { $_->name } @n),
    'the stopped nodes count as down';
done_testing;
