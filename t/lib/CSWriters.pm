package CSWriters;
# Writers for fault tests: one forked child per node, each PUTting new
# keys one after the other through its node until stopped.  Every answer
# is logged (key, status, end time, seconds, body) to a file the test reads
# while they run, so it can wait for writes to go on (or stop) around a
# fault and, at the end, read back every acknowledged write.
use strict;
use warnings;

use POSIX ();
use Time::HiRes qw(time);
use CSTest qw(req timed_req);

# CSWriters->new(LABEL, BASE, NODE ...): writer i writes BASE/LABEL-wi-j.txt
# through NODE i.
sub new {
    my ($class, $label, $base, @nodes) = @_;
    my $dir = "$ENV{CS_STATE_DIR}/writers-$label";
    mkdir $dir;
    my $self = bless { dir => $dir, n => scalar @nodes, pids => [] }, $class;
    for my $i (0 .. $#nodes) {
        my $pid = fork // die "fork: $!";
        if (!$pid) {
            open my $log, '>', "$dir/w$i" or POSIX::_exit(1);
            $log->autoflush(1);
            for (my $j = 0; !-e "$dir/stop"; $j++) {
                my $k = "$base/$label-w$i-$j.txt";
                my $body = "writer $i write $j " . rand();
                my ($r, $secs) = timed_req(PUT => $nodes[$i]->url . $k, $body);
                printf $log "%s %d %.3f %.3f %s\n", $k, $r->code, time, $secs,
                    $body;
            }
            POSIX::_exit(0);
        }
        push @{ $self->{pids} }, $pid;
    }
    return $self;
}

# The answers writer i got: [key, status, end time, seconds, body] each.
sub lines {
    my ($self, $i) = @_;
    open my $fh, '<', "$self->{dir}/w$i" or return ();
    return map { chomp; [split / /, $_, 5] } grep { /\n\z/ } <$fh>;
}

# How many writes of writer i were acknowledged (2xx) after time t.
sub acked_since {
    my ($self, $i, $t) = @_;
    return scalar grep { $_->[1] =~ /^20[14]$/ && $_->[2] > $t }
                  $self->lines($i);
}

sub stop {
    my ($self) = @_;
    open my $fh, '>', "$self->{dir}/stop" or die $!;
    close $fh;
    waitpid $_, 0 for @{ $self->{pids} };
}

# After stop: { acked => [lines answered 2xx], other => how many were
# answered neither 2xx nor 503, slowest => the longest answer (s),
# gap => the longest time one writer went without an acknowledged write }.
sub summary {
    my ($self) = @_;
    my %s = (acked => [], other => 0, slowest => 0, gap => 0);
    for my $i (0 .. $self->{n} - 1) {
        my $last;
        for my $l ($self->lines($i)) {
            $s{slowest} = $l->[3] if $l->[3] > $s{slowest};
            if ($l->[1] =~ /^20[14]$/) {
                push @{ $s{acked} }, $l;
                $s{gap} = $l->[2] - $last if defined $last && $l->[2] - $last > $s{gap};
                $last = $l->[2];
            } elsif ($l->[1] != 503) {
                $s{other}++;
            }
        }
    }
    return \%s;
}

# read_back(LINES, NODE ...) -> what did not read back: each acknowledged
# write GET through each node must give its bytes.
sub read_back {
    my ($lines, @nodes) = @_;
    my @lost;
    for my $l (@$lines) {
        for my $node (@nodes) {
            my $g = req(GET => $node->url . $l->[0]);
            push @lost, "$l->[0] through " . $node->name . ': ' . $g->code
                unless $g->code == 200 && $g->content eq $l->[4];
        }
    }
    return @lost;
}

1;
