# The registry on a Galera cluster (three MariaDB members started by
# scripts/services.sh), each node on its own member, as an operator runs it
# without a single point of failure:
#   - read-after-write and read-after-delete through other nodes (other
#     members) under a load of writes, with memcached up and with memcached
#     down (every lookup then reads the database): never an older version,
#     never a 503;
#   - conditional PUTs racing through three members: exactly one winner,
#     the others 412; unconditional ones: all answered, versions unique;
#   - exclusive LOCKs racing through three members: exactly one granted
#     (a turn that holds across members);
#   - a member killed with SIGKILL while all three nodes write: its node
#     answers at once (503 for writes, its own copies still served), the
#     others go on, the member comes back and its node writes again without
#     a restart, and every acknowledged write is read back through every
#     node;
#   - the last member left outside the primary component: the registry is
#     unreachable (503 at once, own copies served), never empty, until
#     the member is made a primary component.
use strict;
use warnings;
use Apache::Test qw(-withtestmore);
use lib 't/lib';
use CSTest qw(req svc unique_key wait_for race lock_round timed_req galera);
use CSNode;
use CSWriters;
use Time::HiRes qw(time sleep);
use POSIX ();

# ---- the Galera cluster and three nodes on it ---------------------------
my %port = galera();
is scalar(keys %port), 3, 'a Galera cluster of three members started'
    or BAIL_OUT('no Galera cluster');

my $base = '/files/' . unique_key('t60');
my $dead_mc = CSNode::free_port();    # nothing listens there

# Nodes g60a..c, node i on member i; mc_port => undef: the suite's memcached.
sub nodes {
    my ($mc) = @_;
    return map {
        CSNode->new("g60$_->[0]", db_port => $port{ $_->[1] },
                    dav => 1, ($mc ? (mc_port => $mc) : ()))
    } ([a => 1], [b => 2], [c => 3]);
}

sub version { $_[0]->header('X-ClusterStorage-Version') // '-' }

sub writers { CSWriters->new($_[0], $base, @_[1 .. $#_]) }


# Read-after-write: each PUT (a new key, then a new version) through one
# node, then GETs through the two others, then a DELETE through the third
# and GETs (404) through the others; returns the wrong answers as text.
sub read_after_write {
    my ($label, @n) = @_;
    my @wrong;
    for my $i (0 .. 29) {
        my $k = "$base/$label-$i.txt";
        for my $v (1 .. 2) {
            my $w = $n[($i + $v) % 3];
            my $body = "$label $i v$v " . ('x' x ($i * 7));
            my $r = req(PUT => $w->url . $k, $body);
            if (!$r->is_success) {
                push @wrong, "PUT $k v$v through " . $w->name . ': ' . $r->code;
                next;
            }
            for my $o (grep { $_ != $w } @n) {
                my $g = req(GET => $o->url . $k);
                push @wrong, "GET $k v$v through " . $o->name . ': '
                           . $g->code . ' version ' . version($g)
                    unless $g->code == 200 && $g->content eq $body;
            }
        }
        # A DELETE through the third node reaches the two others at once.
        my $d = $n[$i % 3];
        my $r = req(DELETE => $d->url . $k);
        push @wrong, "DELETE $k through " . $d->name . ': ' . $r->code
            unless $r->code == 204;
        for my $o (grep { $_ != $d } @n) {
            my $g = req(GET => $o->url . $k);
            push @wrong, "GET $k after its DELETE through " . $o->name . ': '
                       . $g->code unless $g->code == 404;
        }
    }
    return @wrong;
}

my @n = map { $_->start } nodes();
{
    # Under a load of writes through every member, so that members lag in
    # applying what the others committed.
    my $load = writers('load-mc', @n);
    my @wrong = read_after_write('mc', @n);
    $load->stop;
    is scalar(@wrong), 0,
        '60 writes and 30 deletes through one member read at once through the '
        . 'two others (memcached up): no old version, no 503'
        or diag join "\n", @wrong[0 .. ($#wrong < 9 ? $#wrong : 9)];
}
$_->stop for @n;
@n = map { $_->start } nodes($dead_mc);
{
    my $load = writers('load-nomc', @n);
    my @wrong = read_after_write('nomc', @n);
    $load->stop;
    is scalar(@wrong), 0,
        '60 writes and 30 deletes read at once through the other members with '
        . 'memcached down (every lookup reads the database)'
        or diag join "\n", @wrong[0 .. ($#wrong < 9 ? $#wrong : 9)];
}
$_->stop for @n;
@n = map { $_->start } nodes();
my ($A, $B, $C) = @n;

# ---- conditional and unconditional PUTs racing through three members ----
{
    my @rounds;
    for my $round (1 .. 10) {
        my $k = "$base/race-$round.txt";
        my $r = req(PUT => $A->url . $k, 'v1');
        my $etag = $r->header('ETag');
        my @got = race(map {
            my $node = $_;
            sub { req(PUT => $node->url . $k, 'from ' . $node->name,
                      'If-Match' => $etag)->code }
        } @n);
        push @rounds, join ' ', sort @got;
    }
    is_deeply \@rounds, [('204 412 412') x 10],
        '10 rounds of If-Match PUTs through three members: one 204, two 412';
}
{
    my @rounds;
    for my $round (1 .. 10) {
        my $k = "$base/new-$round.txt";
        my @got = race(map {
            my $node = $_;
            sub { req(PUT => $node->url . $k, 'from ' . $node->name,
                      'If-None-Match' => '*')->code }
        } @n);
        push @rounds, join ' ', sort @got;
    }
    is_deeply \@rounds, [('201 412 412') x 10],
        '10 rounds of If-None-Match: * PUTs of a new key: one 201, two 412';
}
{
    my ($bad, @versions) = (0);
    for my $round (1 .. 10) {
        my $k = "$base/free-$round.txt";
        my @got = race(map {
            my $node = $_;
            sub {
                my $r = req(PUT => $node->url . $k, 'from ' . $node->name);
                return $r->code . ' ' . version($r);
            }
        } @n);
        my @v = sort map { (split ' ')[1] } @got;
        $bad++ if grep { !/^20[14] / } @got;
        $bad++ unless "@v" eq '1 2 3';
        diag "round $round: @got" unless "@v" eq '1 2 3';
    }
    is $bad, 0, '10 rounds of 3 unconditional PUTs of a new key through '
        . 'three members: all answered, versions 1, 2, 3';
}

# ---- exclusive LOCKs through three members --------------------------------
{
    my $k = '/dav/' . unique_key('t60lock') . '.txt';
    is req(PUT => $A->url . $k, 'x')->code, 201, 'PUT a file in the DAV space';
    my @wins;
    for my $round (1 .. 6) {
        my @got = lock_round($k, map { $n[$_ % 3]->url } 0 .. 5);
        my @ok = grep { $_->[0] == 200 } @got;
        push @wins, scalar(@ok) . (grep({ $_->[0] != 200 && $_->[0] != 423 } @got)
                                   ? ' (' . join(',', map { $_->[0] } @got) . ')'
                                   : '');
        req(UNLOCK => $A->url . $k, undef, 'Lock-Token' => "<$_->[1]>")
            for @ok;
    }
    is_deeply \@wins, [(1) x 6],
        '6 rounds of 6 exclusive LOCKs through three members: one granted, '
        . 'the others 423';
}

# ---- a member killed while every node writes ------------------------------
{
    my $held = "$base/held-by-b.txt";
    is req(PUT => $B->url . $held, 'b holds this')->code, 201,
        'a file written through b (b holds a copy)';
    my $w = writers('kill', @n);
    my $ok_since = sub { $w->acked_since(@_) };
    ok wait_for(30, sub { !grep { $ok_since->($_, 0) < 5 } 0 .. 2 }),
        'three writers write through three members';

    my $t_kill = time;
    svc('galera-kill', 2);
    my ($first_503, $slowest) = (undef, 0);
    ok wait_for(30, sub {
        my ($r, $secs) = timed_req(PUT => $B->url . "$base/probe-" . time, 'p');
        $slowest = $secs if $secs > $slowest;
        return 0 unless $r->code == 503;
        $first_503 = time - $t_kill;
        return 1;
    }), 'member b killed: writes through node b get 503';
    cmp_ok $slowest, '<', 12,
        'no write through b waited longer than the database timeout and a bit';
    my ($r, $secs) = timed_req(PUT => $B->url . "$base/probe-fast", 'p');
    is $r->code, 503, 'a write through b while its member is down: 503';
    cmp_ok $secs, '<', 1, '... at once (no wait on the dead member)';
    $r = req(GET => $B->url . $held);
    is $r->code . ' ' . $r->content, '200 b holds this',
        'b still serves its own copy (promise 7)';
    my $t_down = time;
    ok wait_for(30, sub { $ok_since->(0, $t_down) >= 3
                          && $ok_since->(2, $t_down) >= 3 }),
        'nodes a and c write on while member b is down';

    svc('galera-start-member', 2);
    my $t_back = time;
    ok wait_for(60, sub {
        req(PUT => $B->url . "$base/back-" . time, 'b')->is_success
    }), 'member b back: node b writes again without a restart';
    ok wait_for(30, sub { !grep { $ok_since->($_, $t_back) < 3 } 0 .. 2 }),
        'all three writers write again';
    $w->stop;

    my $sum = $w->summary;
    note scalar(@{ $sum->{acked} }) . ' acknowledged writes; slowest answer '
        . sprintf('%.1f', $sum->{slowest}) . ' s; first 503 through b after '
        . sprintf('%.1f', $first_503 // -1) . ' s';
    is $sum->{other}, 0, 'every write was answered 2xx or 503';
    cmp_ok $sum->{slowest}, '<', 15, 'no write waited longer than 15 s';
    my @lost = CSWriters::read_back($sum->{acked}, @n);
    is scalar(@lost), 0, 'every acknowledged write reads back through every '
        . 'node, none older'
        or diag join "\n", @lost[0 .. ($#lost < 9 ? $#lost : 9)];
}

# ---- the last member standing: outside the primary component ------------
{
    my $held = "$base/held-by-b-2.txt";
    is req(PUT => $B->url . $held, 'b holds this too')->code, 201,
        'another file written through b';
    my $from = -s $B->error_log;
    # What b logged since the kill.
    my $log = sub { open my $fh, '<', $B->error_log or return '';
                    seek $fh, $from, 0; local $/; <$fh> // '' };
    svc('galera-kill', $_) for 1, 3;
    # The first requests may wait for the database (at most its timeout)
    # until it says that it is apart.
    ok wait_for(40, sub {
        req(PUT => $B->url . "$base/probe-" . time, 'p');
        $log->() =~ /CS123: the database is a Galera member outside the primary component/
    }), 'members a and c killed: b\'s member is not Primary, and the '
        . 'registry counts as unreachable (CS123, error 1047)';
    my ($r, $secs) = timed_req(PUT => $B->url . "$base/apart", 'p');
    is $r->code, 503, 'a write through b then gets 503 (not an empty registry)';
    cmp_ok $secs, '<', 1, '... at once';
    $r = req(GET => $B->url . $held);
    is $r->code . ' ' . $r->content, '200 b holds this too',
        'b serves its own copy';
    svc('galera-bootstrap', 2);
    ok wait_for(30, sub {
        req(PUT => $B->url . "$base/alone-" . time, 'b')->is_success
    }), 'member b made a primary component of its own: node b writes '
        . 'again without a restart';
    like $log->(), qr/CS124: the database answers again/,
        'b said so (CS124)';
}

done_testing;
