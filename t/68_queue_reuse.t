# A replication job that is done leaves its file behind as a spare in
# .clusterstorage/spare, and the next job a writer queues overwrites a
# spare instead of making a new file (on ext4 without a journal a new
# inode after many freed ones costs a walk over all of them).  What a user
# would check: jobs written into reused files are exactly the new jobs
# (shorter ones too: nothing of the old one is left to misread), every
# key still reaches its holders, the spares stay bounded, a graceful
# restart hands the old children's spares to the new ones, and a restart
# leaves none behind.
use strict;
use warnings;
use Apache::Test qw(-withtestmore);
use lib 't/lib';
use CSTest qw(req unique_key wait_for);
use CSNode;

# Three replicas: A, B and the suite's own server.  With B down a job
# cannot finish, so it stays queued where the test can look at it.
my ($A, $B) = map { CSNode->new("r68$_", replicas => 3)->start } qw(a b);
my $spare_dir = $A->root . '/.clusterstorage/spare';
my $queue_dir = $A->root . '/.clusterstorage/queue';

sub spares {
    opendir my $dh, $spare_dir or die "$spare_dir: $!";
    my @f = grep { /^spare-/ } readdir $dh;
    closedir $dh;
    return @f;
}
sub inodes_in {
    my ($dir, @names) = @_;
    return map { (stat "$dir/$_")[1] // () } @names;
}
sub short_of_three {
    my @keys = @_;
    return grep { my @h = $A->live_holders($_); @h < 3 } @keys;
}

ok -d $spare_dir, 'the node root has .clusterstorage/spare';
is scalar(spares()), 0, 'no spare job file on a fresh node';

# 1. B down: ten writes with long keys leave ten jobs queued.
$B->stop;
my @long = map { '/files/' . unique_key("reuse-long-$_-" . ('x' x 150)) . '.txt' }
           1 .. 10;
is req(PUT => $A->url . $_, "long $_\n")->code, 201, "PUT of a long key"
    for @long;
ok wait_for(10, sub { $A->queue_jobs == 10 }), 'ten jobs wait for B'
    or diag 'queue: ' . join ' ', $A->queue_jobs;

# B back: the jobs finish, and their files become the spares.
$B->start;
my @short;
ok wait_for(90, sub { @short = short_of_three(@long); !@short && !$A->queue_jobs }),
    'with B back, every long key has three holders and the queue is empty'
    or diag "short: @short; queue: " . join ' ', $A->queue_jobs;
my @sp = spares();
is scalar(@sp), 10, 'the ten finished jobs are kept as spares';
my %spare_inode = map { $_ => 1 } inodes_in($spare_dir, @sp);

# 2. B down again: five writes with short keys take five spares over.
$B->stop;
my @keys = map { '/files/' . unique_key("r$_") . '.txt' } 1 .. 5;
is req(PUT => $A->url . $_, "short $_\n")->code, 201, "PUT of a short key"
    for @keys;
my @jobs;
ok wait_for(10, sub { @jobs = $A->queue_jobs; @jobs == 5 }),
    'five jobs wait for B';
my @ino = inodes_in($queue_dir, @jobs);
is scalar(grep { $spare_inode{$_} } @ino), 5,
    'each of them is written into a spare (the same inode), not a new file';
is scalar(spares()), 5, 'five spares are left';
# Each reused file holds exactly its new job: "CSJ1 P <version>", the key,
# its path, nothing after.
my $exact = 0;
for my $j (@jobs) {
    open my $fh, '<', "$queue_dir/$j" or next;
    local $/;
    my $body = <$fh>;
    $exact++ if $body =~ m{\ACSJ1 P 1\n(/files/[^\n]+)\n\1\z}
                && grep { $_ eq $1 } @keys;
}
is $exact, 5, 'each reused job file holds its new, shorter job and nothing more';

$B->start;
ok wait_for(90, sub { @short = short_of_three(@keys); !@short && !$A->queue_jobs }),
    'with B back, the short keys have three holders and the queue is empty'
    or diag "short: @short";
is scalar(spares()), 10, 'and their files are spares again (ten in all)';

# 3. A graceful restart: the old children (frozen here, so that they are
# certainly still there while the new generation starts) keep their
# spares, and the new children write jobs into them.
# The node's cache lease in the registry stays through it: the old
# children, exiting after the new generation renewed it, leave it alone
# (writers must keep telling a node that serves from its cache).
my $lease = sub { CSTest::sql("SELECT lease FROM cs_nodes WHERE name = 'r68a'") };
my $t0 = CSTest::sql('SELECT UNIX_TIMESTAMP()');
my @old = $A->children;
kill 'STOP', @old;
kill 'USR1', $A->pid;
my $gone = sub { my %o = map { $_ => 1 } @old; grep { !$o{$_} } $A->children };
ok wait_for(30, sub { $gone->() >= 1 }), 'a new generation of children started';
ok wait_for(30, sub {
        CSTest::sql("SELECT heartbeat > $t0 AND lease > 0 FROM cs_nodes WHERE name = 'r68a'") }),
    'and recorded a heartbeat with a lease';
kill 'CONT', @old;
my $least = $lease->();
ok wait_for(30, sub {
        my $l = $lease->();
        $least = $l if $l < $least;
        !grep { kill 0, $_ } @old }), 'and the old children exited';
my $l = $lease->();
$least = $l if $l < $least;
cmp_ok $least, '>', 0, "A's lease in the registry stayed while they exited";
@sp = spares();
is scalar(@sp), 10, 'the ten spares are still there';
%spare_inode = map { $_ => 1 } inodes_in($spare_dir, @sp);
$B->stop;
my @after = map { '/files/' . unique_key("g$_") . '.txt' } 1 .. 5;
is req(PUT => $A->url . $_, "graceful $_\n")->code, 201, "PUT after the graceful restart"
    for @after;
ok wait_for(10, sub { @jobs = $A->queue_jobs; @jobs == 5 }),
    'five jobs wait for B';
is scalar(grep { $spare_inode{$_} } inodes_in($queue_dir, @jobs)), 5,
    "the new children's jobs are written into the old children's spares";
$B->start;
ok wait_for(90, sub { @short = short_of_three(@after); !@short && !$A->queue_jobs }),
    'with B back, those keys have three holders and the queue is empty'
    or diag "short: @short";

# 4. A restart sweeps the spares of the children that are gone.
$A->stop;
$A->start;
is scalar(spares()), 0, 'after a restart no spare is left';
is req(GET => $B->url . $keys[0])->code, 200, 'the cluster still serves the keys';

$_->stop for $A, $B;
done_testing;
