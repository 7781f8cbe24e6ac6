# Overwrites racing reads (SPEC promise 11): while two nodes keep
# replacing a key, a third node that must fetch every new version answers
# every GET with 200 and a whole version, never 503, and never an older
# version than one it served before.  (A holder asked for the version the
# reader had just read may already hold a newer one and answer 404; the
# reader then reads the registry again and fetches that.)
use strict;
use warnings;
use Apache::Test qw(-withtestmore);
use lib 't/lib';
use CSTest qw(req unique_key);
use CSNode;
use File::Temp ();
use POSIX ();

my $A = CSNode->new('o45a', replicas => 2)->start;
my $B = CSNode->new('o45b', replicas => 2)->start;
my $C = CSNode->new('o45c', replicas => 2)->start;
my $key = '/files/' . unique_key('race') . '.txt';
# A version's body names its writer and round, 400 times over: a mixed or
# cut-short body shows.
sub body { my ($w, $i) = @_; "$w-$i\n" x 8000 }
is req(PUT => $A->url . $key, body('A', 0))->code, 201, 'the key exists';

my $rounds = 80;
my @pids;
for my $w ([A => $A], [B => $B]) {
    my $pid = fork // die "fork: $!";
    if (!$pid) {
        for my $i (1 .. $rounds) {
            my $c = req(PUT => $w->[1]->url . $key, body($w->[0], $i))->code;
            next if $c == 204 || $c == 201;
            print STDERR "# writer $w->[0] round $i: $c\n";
            POSIX::_exit(1);
        }
        POSIX::_exit(0);
    }
    push @pids, $pid;
}
# Four readers on C at once: a request that waited for another one's fetch
# may find a newer version than the one it read.
my $out = File::Temp::tempdir(CLEANUP => 1);
my @readers;
for my $n (1 .. 4) {
    my $pid = fork // die "fork: $!";
    if (!$pid) {
        my ($last, $reads, $backwards, %codes, @bad) = (0, 0, 0);
        while (1) {
            my $running = grep { kill 0, $_ } @pids;
            my $r = req(GET => $C->url . $key);
            $reads++;
            $codes{$r->code}++;
            if ($r->code == 200) {
                my $v = $r->header('X-ClusterStorage-Version') // 0;
                $backwards++ if $v < $last;
                $last = $v if $v > $last;
                my ($w, $i) = $r->content =~ /\A([AB])-(\d+)\n/;
                push @bad, "v$v" unless defined $w && $r->content eq body($w, $i);
            }
            last unless $running;
        }
        open my $fh, '>', "$out/$n" or POSIX::_exit(1);
        print $fh join(' ', $reads, $backwards, scalar(@bad),
                       map { "$_=$codes{$_}" } sort keys %codes), "\n";
        close $fh;
        POSIX::_exit(0);
    }
    push @readers, $pid;
}
my %exit;
for my $pid (@pids) {
    waitpid($pid, 0);
    $exit{$pid} = $?;
}
waitpid($_, 0) for @readers;
my ($reads, $backwards, $bad, %codes) = (0, 0, 0);
for my $n (1 .. 4) {
    open my $fh, '<', "$out/$n" or do { $bad++; next };
    my ($rd, $bk, $bd, @c) = split ' ', scalar <$fh>;
    ($reads, $backwards, $bad) = ($reads + $rd, $backwards + $bk, $bad + $bd);
    for (@c) { my ($k, $v) = split /=/; $codes{$k} += $v }
}
my $writers_ok = !grep { $exit{$_} != 0 } @pids;
ok $writers_ok, "both writers stored $rounds versions each";
ok $reads >= 20, "C read $reads times while they wrote";
is_deeply \%codes, { 200 => $reads }, 'every read on C was 200, none 503'
    or diag explain \%codes, $C->log_tail;
is $bad, 0, 'every body was one whole version';
ok !$backwards, 'C never went back to an older version';

done_testing;
