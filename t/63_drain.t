# Drain and retire a node (SetHandler clusterstorage-admin, behind Basic
# authentication): while clients read and write through it, the draining
# node's keys get ClusterStorageReplicas copies on other nodes, it takes no
# new copies, its status page shows what is left; once it is stopped it is
# forgotten from the membership, and every key reads back through the
# others.  A client without the credentials changes nothing.
use strict;
use warnings;
use Apache::Test qw(-withtestmore);
use lib 't/lib';
use CSTest qw(req sql sql_str unique_key wait_for);
use CSNode;
use CSWriters;
use Time::HiRes qw(time);
use POSIX ();

my @n = map { CSNode->new("r63$_", replicas => 2, admin => 1)->start } qw(a b c);
my ($A, $B, $C) = @n;
my %auth = CSNode::admin_auth();
# admin(NODE, QUERY, HEADERS): without headers, no credentials.
sub admin { my ($node, $q, %h) = @_; req(POST => $node->url . "/cluster-admin?$q", '', %h) }

my $base = '/files/' . unique_key('t63');
my @keys = map { "$base/k$_.txt" } 1 .. 40;
is scalar(grep { req(PUT => $C->url . $_, "bytes of $_")->code == 201 } @keys),
    40, '40 keys written through c (c holds each)';

# Keys matching the LIKE pattern (all under base by default) whose
# current version has fewer than 2 copies on nodes other than c.
sub short_elsewhere {
    my ($like) = @_;
    sql('SELECT COUNT(*) FROM cs_files f WHERE f.path LIKE '
        . sql_str($like // "$base/%") . ' AND f.deleted = 0 AND (SELECT COUNT(*) FROM '
        . 'cs_replicas r WHERE r.path = f.path AND r.version = f.version AND '
        . "r.node <> 'r63c') < 2");
}
sub draining_in_registry {
    sql("SELECT draining FROM cs_nodes WHERE name = 'r63c'");
}

# ---- the admin handler refuses what it must -------------------------------
is admin($C, 'drain=r63c')->code, 401, 'drain without credentials: 401';
is draining_in_registry(), '0', '... and c does not drain';
is req(GET => $C->url . '/cluster-admin?drain=r63c', undef, %auth)->code, 405,
    'GET: 405';
is admin($C, 'drain=nosuch', %auth)->code, 404, 'an unknown node: 404';
is admin($C, 'frobnicate=r63c', %auth)->code, 400, 'no command: 400';
is admin($C, 'drain=r63c&forget=r63c', %auth)->code, 400, 'two commands: 400';

# ---- drain c while clients read and write through it ----------------------
my $w = CSWriters->new('t63', $base, $C);
my $rpid = fork // die "fork: $!";
if (!$rpid) {
    my $bad = 0;
    my $t_end = time + 600;
    while (!-e "$ENV{CS_STATE_DIR}/t63-stop" && time < $t_end) {
        my $k = $keys[int rand @keys];
        my $r = req(GET => $C->url . $k);
        $bad++ unless $r->code == 200 && $r->content eq "bytes of $k";
    }
    POSIX::_exit($bad > 250 ? 250 : $bad);
}
ok wait_for(20, sub { $w->acked_since(0, 0) >= 3 }), 'a writer writes through c';
my $t0 = time;
my $r = admin($C, 'drain=r63c', %auth);
is $r->code, 200, 'drain c: 200' or diag $r->as_string;
is draining_in_registry(), '1', 'c drains (registry)';
ok wait_for(20, sub {
    my $st = $A->status or return 0;
    grep { $_->{name} eq 'r63c' && $_->{draining} } @{ $st->{nodes} };
}), "a's status page shows c as draining";
ok wait_for(90, sub { short_elsewhere("$base/k%") == 0 }),
    'every one of the 40 keys of c has 2 copies on other nodes';
my $secs = time - $t0;
note sprintf 'the 40 keys copied off c in %.1f s, beside the writes', $secs;

# Writes go on through c; stop the clients and check them.
ok wait_for(20, sub { $w->acked_since(0, $t0 + 1) >= 3 }),
    'writes through the draining c go on';
$w->stop;
{ open my $fh, '>', "$ENV{CS_STATE_DIR}/t63-stop" or die $!; }
waitpid $rpid, 0;
is $? >> 8, 0, 'every read through c while it drained was 200 with the bytes';
my $sum = $w->summary;
is $sum->{other}, 0, 'every write through c was answered 2xx or 503';
note scalar(@{ $sum->{acked} }) . ' keys written through c while it drained';
ok wait_for(60, sub { short_elsewhere() == 0 }),
    'the keys written through c while it drained have 2 copies elsewhere too';
ok wait_for(30, sub { my $st = $C->status or return 0;
                      $st->{drain} && $st->{drain}{keys_left} == 0 }),
    "c's status page: nothing left to copy"
    or diag explain $C->status->{drain};
my $d = $C->status->{drain};
ok defined $d->{bytes_left} && exists $d->{keys_per_second},
    '... with bytes left and a rate';

# It takes no new copies.
my $new = "$base/after-drain.txt";
is req(PUT => $A->url . $new, 'new')->code, 201, 'a new key through a';
ok wait_for(30, sub {
    sql('SELECT COUNT(*) FROM cs_replicas WHERE path = ' . sql_str($new)) >= 2 }),
    'it is replicated';
is sql('SELECT COUNT(*) FROM cs_replicas WHERE node = \'r63c\' AND path = '
       . sql_str($new)), '0', 'but not to the draining c';

# ---- retire it ---------------------------------------------------------
is admin($A, 'forget=r63c', %auth)->code, 409, 'forget while c is up: 409';
$C->stop;
ok wait_for(30, sub {
    my $st = $A->status or return 0;
    grep { $_->{name} eq 'r63c' && $_->{state} eq 'down' } @{ $st->{nodes} };
}), 'c stopped: down on a\'s status page';
$r = admin($A, 'forget=r63c', %auth);
is $r->code, 200, 'forget c: 200' or diag $r->as_string;
is sql("SELECT COUNT(*) FROM cs_nodes WHERE name = 'r63c'"), '0',
    'c is no longer a member';
is sql("SELECT COUNT(*) FROM cs_replicas WHERE node = 'r63c'"), '0',
    'and no longer a holder of anything';
is admin($A, 'forget=r63c', %auth)->code, 404, 'forget it again: 404';
my @lost = CSWriters::read_back([ map { [$_, 200, 0, 0, "bytes of $_"] } @keys ],
                                $A, $B);
push @lost, CSWriters::read_back($sum->{acked}, $A, $B);
is scalar(@lost), 0, 'every key reads back through a and b'
    or diag join "\n", @lost[0 .. ($#lost < 9 ? $#lost : 9)];

done_testing;
