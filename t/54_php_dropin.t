# The cluster:// wrapper as a drop-in replacement for file:// (SPEC
# section 9), side by side: t/php/dropin_ops.php runs the same list of
# common PHP file operations once on a fresh local directory and once on a
# fresh WebDAV collection of the cluster, written through one node
# (cluster://) and checked through another (clusterb://), and every op must
# give the same normalised result and warnings on both sides.
#
# The differences PHP itself imposes are listed in clients/php/README.md,
# in the table between <!-- dropin-differences --> and
# <!-- /dropin-differences -->: an op listed there must differ (a row that
# is no longer true fails, asking for its removal), any other op must be
# equal.  Both runs must execute the whole list of ops (at least 130), in
# the same order; the local run must be clean (exit 0, nothing on stderr).
#
# An op that kills PHP (a fatal error, or the script's 60 s alarm) gets a
# "fatal"/"timeout" result line and the run resumes after it (--after=ID),
# so one broken op does not hide the others.
use strict;
use warnings;
use Apache::Test qw(-withtestmore);
use lib 't/lib';
use CSTest qw(req unique_key);
use CSNode;
use File::Temp qw(tempdir);
use JSON::PP ();

my $REPO = $ENV{CS_REPO} || '.';
my $SCRIPT = "$REPO/t/php/dropin_ops.php";
my $README = "$REPO/clients/php/README.md";

my ($php) = grep { defined && -x } $ENV{PHP}, '/usr/bin/php',
    map { "$_/php" } split /:/, $ENV{PATH} // '';
unless (ok $php, 'php-cli is installed (scripts/deps.sh installs it)') {
    done_testing;
    exit;
}
my @PHP = ($php, '-d', 'error_reporting=-1', '-d', 'allow_url_fopen=0',
           '-d', 'allow_url_include=0', '-d', 'display_errors=stderr', $SCRIPT);
my $JSON = JSON::PP->new->canonical->allow_nonref;
my $tmp = tempdir('cs54-XXXXXX', TMPDIR => 1, CLEANUP => 1);

# ---- the op list and the listed differences -----------------------------
my ($list_out, $list_err, $list_rc) = run_cmd(@PHP, 'list');
my @ids = split /\n/, $list_out;
is $list_rc, 0, 'dropin_ops.php list exits 0' or diag $list_err;
ok @ids >= 130, scalar(@ids) . ' ops (at least 130)';
my %seen;
my @dup = grep { $seen{$_}++ } @ids;
ok !@dup, 'op ids are unique' or diag "duplicates: @dup";
my %known = map { $_ => 1 } @ids;

my %listed = differences($README);
ok keys %listed, scalar(keys %listed) . ' differences listed in clients/php/README.md'
    . ' (<!-- dropin-differences --> table)';
for my $id (sort keys %listed) {
    ok $known{$id}, "the listed difference `$id` names an op of dropin_ops.php"
        or diag "no op $id in t/php/dropin_ops.php: fix or remove its row";
}

# ---- the local run -------------------------------------------------------
my $root = "$tmp/root";
mkdir $root or die "mkdir $root: $!";
chmod 0755, $root;
my $local = run_ops('local', $root);
check_run('local', $local, 1);

# ---- the cluster run: one collection through two DAV nodes --------------
my @nodes = map { CSNode->new($_, dav => 1)->start } qw(d54a d54b);
my $base = '/dav/' . unique_key('t54');
my $mk = req(MKCOL => $nodes[0]->url . "$base/");
is $mk->code, 201, "MKCOL of the test collection $base" or diag $mk->as_string;
my $cluster = run_ops('cluster', $nodes[0]->url . $base, $nodes[1]->url . $base);
check_run('cluster', $cluster, 0);

# ---- op by op -------------------------------------------------------------
my ($same, $differ) = (0, 0);
for my $id (@ids) {
    my $l = $local->{line}{$id};
    my $c = $cluster->{line}{$id};
    my $lj = defined $l ? $JSON->encode(view($l)) : undef;
    my $cj = defined $c ? $JSON->encode(view($c)) : undef;
    my $eq = defined $lj && defined $cj && $lj eq $cj;
    $eq ? $same++ : $differ++;
    my $show = sub {
        diag "  local:   " . ($lj // '(op did not run)');
        diag "  cluster: " . ($cj // '(op did not run)');
    };
    if (exists $listed{$id}) {
        my $ok = ok defined $lj && defined $cj && !$eq,
            "$id: differs, as clients/php/README.md lists ($listed{$id})";
        unless ($ok) {
            diag $eq
                ? "  $id now gives the same on both sides: remove its row from the"
                  . ' dropin-differences table of clients/php/README.md'
                : "  $id did not run on both sides";
            $show->();
        }
    } else {
        ok $eq, "$id: cluster:// gives what file:// gives" or $show->();
    }
}
note "$same of " . scalar(@ids) . " ops equal, $differ different";

$_->stop for @nodes;
done_testing;

# ---------------------------------------------------------------- helpers

# What is compared: the line without its id.
sub view {
    my ($line) = @_;
    my %v = %$line;
    delete $v{id};
    return \%v;
}

# The op ids (backticked, first column) of the rows between
# <!-- dropin-differences --> and <!-- /dropin-differences -->, with their
# difference column.
sub differences {
    my ($file) = @_;
    open my $fh, '<', $file or die "$file: $!";
    my ($in, %d) = (0);
    while (my $line = <$fh>) {
        if ($line =~ /^<!--\s*dropin-differences\s*-->/) { $in = 1; next }
        last if $line =~ m{^<!--\s*/dropin-differences\s*-->};
        next unless $in && $line =~ /^\|/;
        my (undef, $first, $what) = split /\s*(?<!\\)\|\s*/, $line;
        next unless defined $first;
        ($what //= '') =~ s/\\\|/|/g;
        $d{$_} = $what for $first =~ /`([^`]+)`/g;
    }
    close $fh;
    return %d;
}

# run_cmd(ARGV...) -> (stdout, stderr, exit status); bounded in time.
sub run_cmd {
    my @cmd = @_;
    my $errfile = "$tmp/stderr";
    my $pid = open my $fh, '-|';
    die "fork: $!" unless defined $pid;
    if (!$pid) {
        open STDERR, '>', $errfile or die "stderr: $!";
        exec 'timeout', '-k', '10', '1800', @cmd or die "exec: $!";
    }
    local $/;
    my $out = <$fh> // '';
    close $fh;
    # Killed by a signal (timeout passes that on): 128 + the signal.
    my $rc = $? & 127 ? 128 + ($? & 127) : $? >> 8;
    my $err = '';
    if (open my $e, '<', $errfile) { $err = <$e> // ''; close $e }
    return ($out, $err, $rc);
}

# run_ops(MODE, ARGS...) -> {line => {id => decoded line}, order => [ids as
# they came], runs => [{rc, err, after}], stray => text that was no op line}.
# Resumes after an op that ended PHP (its line says fatal/timeout; an op
# that ended it without a line is skipped and stays missing).
sub run_ops {
    my ($mode, @args) = @_;
    my %r = (line => {}, order => [], runs => [], stray => '');
    my $after;
    my %pos = map { $ids[$_] => $_ } 0 .. $#ids;
    for (1 .. scalar @ids) {
        my ($out, $err, $rc) = run_cmd(@PHP, $mode, @args,
                                       defined $after ? "--after=$after" : ());
        push @{ $r{runs} }, { rc => $rc, err => $err, after => $after };
        my $last;
        for my $l (split /\n/, $out) {
            my $j = eval { JSON::PP::decode_json($l) };
            if (ref $j ne 'HASH' || !defined $j->{id}) {
                $r{stray} .= "$l\n";
                next;
            }
            push @{ $r{order} }, $j->{id};
            $r{line}{ $j->{id} } = $j;
            $last = $j->{id};
        }
        last if $rc == 0;
        my $next;
        if (defined $last && ref $r{line}{$last}{result} eq 'HASH'
            && grep { exists $r{line}{$last}{result}{$_} } qw(fatal timeout)) {
            $next = $last;                           # it has its line
        } else {
            # Died inside the op after $last (or the first) without a line.
            my $i = defined $last ? $pos{$last} + 1
                  : defined $after ? $pos{$after} + 1 : 0;
            last if $i > $#ids;
            $next = $ids[$i];
        }
        last if !defined $pos{$next} || $pos{$next} == $#ids;
        $after = $next;
    }
    return \%r;
}

sub check_run {
    my ($label, $r, $strict) = @_;
    my @runs = @{ $r->{runs} };
    my $restarts = @runs - 1;
    ok $runs[-1]{rc} == 0 && !$restarts,
        "$label run: php ended normally, without resuming after a dead op"
        or diag "$label: " . join '; ', map {
            "exit $_->{rc}" . (defined $_->{after} ? " (resumed after $_->{after})" : '')
        } @runs;
    my $err = join '', map { $_->{err} } @runs;
    ok $err eq '', "$label run: nothing on stderr" or diag "$label stderr:\n$err";
    ok $r->{stray} eq '', "$label run: only op lines on stdout"
        or diag "$label stray output:\n$r->{stray}";
    is_deeply $r->{order}, \@ids, "$label run: every op ran once, in order"
        or diag "$label ran " . scalar(@{ $r->{order} }) . ' of ' . scalar(@ids);
    if ($strict) {
        my @dead = grep { my $res = $r->{line}{$_} && $r->{line}{$_}{result};
                          ref $res eq 'HASH' && (exists $res->{fatal} || exists $res->{timeout}) }
                   @ids;
        ok !@dead, "$label run: no op died" or diag "died: @dead";
    }
}
